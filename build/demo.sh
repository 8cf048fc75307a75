#!/usr/bin/env bash
# Runs the demo (src/EfReplicaInterceptor.Demo) in Release against a real PostgreSQL primary and
# hot standby it starts itself; installs PostgreSQL first when it is missing. Arguments go to the demo.
# With --web first: the ASP.NET Core sample (src/EfReplicaInterceptor.AspNetCore.Sample) instead, on
# http://127.0.0.1:5080 until Ctrl+C; `--web --tour` drives it over HTTP and exits (0 when every request behaved).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

# shellcheck source=build/ensure-postgres.sh
if ! source "$root/build/ensure-postgres.sh"; then
  echo "demo.sh: the demo starts real PostgreSQL servers, and PostgreSQL could not be found or installed (see above)." >&2
  exit 1
fi

project=src/EfReplicaInterceptor.Demo
if [[ "${1:-}" == "--web" ]]; then
  shift
  project=src/EfReplicaInterceptor.AspNetCore.Sample
fi

# SourceLink only matters for packages (build/pack.sh); off here to save the git queries.
exec dotnet run -c Release -p:EnableSourceLink=false --project "$project" -- "$@"
