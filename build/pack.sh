#!/usr/bin/env bash
# Packs the three packages (EfReplicaInterceptor, EfReplicaInterceptor.AspNetCore, EfReplicaInterceptor.Testing, listed in
# build/packages.slnf) in Release into a folder: the first argument, else artifacts/packages. Each gives a .nupkg and a
# .snupkg. Builds as CI does (ContinuousIntegrationBuild: source paths in the PDBs are /_/..., git read with the
# repository's own configuration only), so two packs of one commit give the same assemblies.
# Prints `pack.sh: N warning(s)` and the packages; exits non-zero when the pack failed, printed any warning, or did not
# give the six files, or when a package names a repository URL that is not a web URL.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$root/artifacts/packages}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$root"

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

# Only this pack's files in the folder: a stale package of another version must not be what a consumer restores.
rm -f "$out"/EfReplicaInterceptor*.nupkg "$out"/EfReplicaInterceptor*.snupkg

log=$(mktemp "${TMPDIR:-/tmp}/efreplica-pack.XXXXXX")
trap 'rm -f "$log"' EXIT

status=0
dotnet pack build/packages.slnf -c Release -p:ContinuousIntegrationBuild=true -p:PackageOutputPath="$out" 2>&1 | tee "$log" || status=$?

# MSBuild prints each warning twice (as it happens and in the summary): count distinct ones.
warnings=$(grep -E ': warning [A-Z]*[0-9]*' "$log" | sort -u | wc -l || true)
echo "pack.sh: $warnings warning(s)"

packages=("EfReplicaInterceptor" "EfReplicaInterceptor.AspNetCore" "EfReplicaInterceptor.Testing")
version=$(dotnet msbuild src/EfReplicaInterceptor/EfReplicaInterceptor.csproj -getProperty:PackageVersion -p:Configuration=Release)
missing=0
for id in "${packages[@]}"; do
  for ext in nupkg snupkg; do
    file="$out/$id.$version.$ext"
    if [[ -f "$file" ]]; then
      echo "pack.sh: $(basename "$file") ($(du -k "$file" | cut -f1) KiB)"
    else
      echo "pack.sh: $(basename "$file") is missing" >&2
      missing=1
    fi
  done
  # The nuspec's <repository url="..."> must be a web URL or absent, never a path of the machine that packed.
  if [[ -f "$out/$id.$version.nupkg" ]] && unzip -p "$out/$id.$version.nupkg" "$id.nuspec" | grep -Eq '<repository[^>]* url="[^h"]'; then
    echo "pack.sh: $id names a repository URL that is not a web URL" >&2
    missing=1
  fi
done

if ((status != 0 || warnings > 0 || missing != 0)); then
  echo "pack.sh: failed (dotnet pack exit $status, $warnings warning(s), files missing or wrong: $missing)" >&2
  exit 1
fi
echo "pack.sh: version $version in $out"
