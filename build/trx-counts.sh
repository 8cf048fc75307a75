#!/usr/bin/env bash
# Sums the <Counters> of TRX result files (dotnet test --logger trx) and prints one line: `PASSED FAILED SKIPPED`.
#   bash build/trx-counts.sh DIR_OR_FILE...
# A directory stands for every *.trx in it and in its direct subdirectories (build/test.sh's vector128 run writes one
# there). Failed counts failed, error, timeout and aborted results: each is a test that did not pass. Skipped is what the
# total leaves (NotExecuted, Inconclusive and the like), never negative. No file at all prints `0 0 0`: the callers decide
# that "no test ran" is a failure.
# Used by build/test.sh and build/consumer-test.sh, so both count the same way.
set -euo pipefail

files=()
shopt -s nullglob
for arg in "$@"; do
  if [[ -d "$arg" ]]; then
    files+=("$arg"/*.trx "$arg"/*/*.trx)
  elif [[ -f "$arg" ]]; then
    files+=("$arg")
  fi
done

# <Counters total="12" executed="12" passed="12" failed="0" error="0" timeout="0" aborted="0" ... />
total=0 passed=0 failed=0
for trx in ${files[@]+"${files[@]}"}; do
  counters=$(grep -o '<Counters [^>]*' "$trx" || true)
  counter() { printf '%s\n' "$counters" | grep -o " $1=\"[0-9]*\"" | grep -o '[0-9][0-9]*' || echo 0; }
  total=$((total + $(counter total)))
  passed=$((passed + $(counter passed)))
  failed=$((failed + $(counter failed) + $(counter error) + $(counter timeout) + $(counter aborted)))
done
skipped=$((total - passed - failed))
if ((skipped < 0)); then skipped=0; fi

echo "$passed $failed $skipped"
