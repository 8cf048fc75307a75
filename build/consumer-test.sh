#!/usr/bin/env bash
# Proves the packages as an application receives them. Packs the three (build/pack.sh) into artifacts/consumer/packages,
# then builds and runs test/consumer, which is outside the solution, has its own nuget.config (our packages only from that
# folder, every other package from the public feed) and no project reference:
#   - QuickstartWeb: a fresh web application whose registration code and appsettings.json are copied, on every run, from
#     README.md's quickstart and the ASP.NET Core package's README, so the documentation is proven to compile;
#   - PackageTests: NUnit tests on EfReplicaInterceptor.Testing (a real primary and standby from local binaries; servers run
#     as an unprivileged user when run as root) asserting from the server's side that a plain read ran on the standby and a
#     read right after a write on the primary, plus the Testing package README's NUnit example as written.
# NuGet's packages folder is a dedicated one (EFREPLICA_CONSUMER_NUGET_PACKAGES, default ~/.cache/efreplica/consumer-nuget),
# kept between runs for the third-party packages; this script deletes our three packages from it before restoring, and
# checks afterwards that what was restored came from the packed folder, so a stale package is never what is tested.
# The last line printed is `N passed, N failed, N skipped`. Exits non-zero when a step failed, a test failed or no test ran.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
# The consumer's own NuGet folder; exported only after packing, so the pack restores and builds the solution as every
# other build here does (a different folder would mean a second restore of the solution and a full rebuild).
consumer_nuget=${EFREPLICA_CONSUMER_NUGET_PACKAGES:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/efreplica/consumer-nuget}
mkdir -p "$consumer_nuget"

consumer=test/consumer
packages=$root/artifacts/consumer/packages
ids=(EfReplicaInterceptor EfReplicaInterceptor.AspNetCore EfReplicaInterceptor.Testing)
started=$SECONDS

give_up() {
  echo "consumer-test.sh: $*" >&2
  echo "0 passed, 0 failed, 0 skipped"
  exit 1
}

# shellcheck source=build/ensure-postgres.sh
source "$root/build/ensure-postgres.sh" || give_up "PostgreSQL's server programs could not be found or installed (see above)."

pack_log=$(mktemp "${TMPDIR:-/tmp}/efreplica-consumer-pack.XXXXXX")
results=$(mktemp -d "${TMPDIR:-/tmp}/efreplica-consumer-results.XXXXXX")
trap 'rm -rf "$pack_log" "$results"' EXIT

echo "consumer-test.sh: packing into $packages" >&2
phase=$SECONDS
bash build/pack.sh "$packages" >"$pack_log" 2>&1 || { cat "$pack_log" >&2; give_up "packing failed."; }
grep '^pack.sh: ' "$pack_log" >&2
echo "consumer-test.sh: packed in $((SECONDS - phase)) s" >&2
version=$(sed -n 's/^pack.sh: version \([^ ]*\) in .*/\1/p' "$pack_log")
[[ -n "$version" ]] || give_up "build/pack.sh did not say which version it packed."

export NUGET_PACKAGES=$consumer_nuget

# Never a stale copy: drop our packages from the consumer's NuGet folder and the consumer's own restore and build output.
for id in "${ids[@]}"; do
  rm -rf "${NUGET_PACKAGES:?}/${id,,}"
done
rm -rf "$consumer"/*/bin "$consumer"/*/obj

# The fenced block number $4 (1-based) of language $3 in the section of $1 that starts with the heading line $2 (up to the
# next heading of the same or a higher level).
block() {
  awk -v heading="$2" -v lang="$3" -v want="$4" '
    $0 == heading { inside = 1; level = index(heading, " "); next }
    inside && /^#+ / && index($0, " ") <= level { inside = 0 }
    inside && !fenced && $0 == "```" lang { fenced = 1; count++; next }
    fenced && /^```/ { fenced = 0; next }
    fenced && count == want { print }
  ' "$1"
}

# Copies a documentation block; fails when it is empty (the heading or the block moved: update this script with the docs).
copy_block() {
  local text
  text=$(block "$@")
  [[ -n "$text" ]] || give_up "no \`\`\`$3 block number $4 under '$2' in $1."
  printf '%s\n' "$text"
}

readme_json=$(copy_block README.md "## Quickstart" json 1)
readme_registration=$(copy_block README.md "## Quickstart" csharp 1)
readme_queries=$(copy_block README.md "## Quickstart" csharp 2)
aspnet_registration=$(copy_block src/EfReplicaInterceptor.AspNetCore/README.md "# EfReplicaInterceptor.AspNetCore" csharp 1)
testing_nunit=$(copy_block src/EfReplicaInterceptor.Testing/README.md "## NUnit" csharp 1)

printf '%s\n' "$readme_json" >"$consumer/QuickstartWeb/appsettings.json"
cat >"$consumer/QuickstartWeb/Quickstart.g.cs" <<CS
// Written by build/consumer-test.sh from README.md ("## Quickstart") and src/EfReplicaInterceptor.AspNetCore/README.md; do
// not edit: change the documentation. Only the usings and the method frames are this script's.
using EfReplicaInterceptor;
using Microsoft.EntityFrameworkCore;

namespace QuickstartWeb;

public static class Quickstart
{
    public static void Register(WebApplicationBuilder builder)
    {
$readme_registration
    }

    public static async Task<Order> ReadAsync(ShopContext db, int id, Checkout checkout)
    {
$readme_queries

        return order;
    }

    public static WebApplication AspNetCorePackage(WebApplicationBuilder builder)
    {
$aspnet_registration

        return app;
    }
}
CS
{
  echo "// Written by build/consumer-test.sh from src/EfReplicaInterceptor.Testing/README.md (\"## NUnit\"), as written; do not edit."
  printf '%s\n' "$testing_nunit"
} >"$consumer/PackageTests/ReadmeExample.g.cs"

status=0
echo "consumer-test.sh: building QuickstartWeb (the README quickstart) against EfReplicaInterceptor $version" >&2
phase=$SECONDS
dotnet build "$consumer/QuickstartWeb/QuickstartWeb.csproj" -c Release -p:EfReplicaVersion="$version" -v:q -nologo \
  || give_up "the quickstart web application did not build against the packages."
echo "consumer-test.sh: restored and built the quickstart in $((SECONDS - phase)) s" >&2

echo "consumer-test.sh: running PackageTests against EfReplicaInterceptor.Testing $version" >&2
phase=$SECONDS
dotnet test "$consumer/PackageTests/PackageTests.csproj" -c Release -p:EfReplicaVersion="$version" \
  --logger "console;verbosity=normal" --logger trx --results-directory "$results" || status=$?
echo "consumer-test.sh: restored, built and ran the tests in $((SECONDS - phase)) s" >&2

# What was restored is what was packed: each package in the consumer's NuGet folder came from the packed folder.
for id in "${ids[@]}"; do
  metadata="$NUGET_PACKAGES/${id,,}/$version/.nupkg.metadata"
  if ! grep -q "\"source\": \"${packages}/\?\"" "$metadata" 2>/dev/null; then
    echo "consumer-test.sh: $id $version was not restored from $packages ($(grep -o '"source": "[^"]*"' "$metadata" 2>/dev/null || echo 'not restored'))." >&2
    status=1
  fi
done

read -r passed failed skipped < <(bash "$root/build/trx-counts.sh" "$results")

exit_code=0
if ((status != 0 || failed > 0)); then
  exit_code=1
fi
if ((passed + failed == 0)); then
  echo "consumer-test.sh: no test ran." >&2
  exit_code=1
fi
echo "consumer-test.sh: took $((SECONDS - started)) s" >&2
echo "$passed passed, $failed failed, $skipped skipped"
exit "$exit_code"
