#!/usr/bin/env bash
# The history matrix's long run (issue 13): a primary and two streaming standbys on loopback, every cell of the matrix
# (synchronous / asynchronous / SET LOCAL synchronous_commit = off / synchronous replication with remote_apply; one standby / two with 0 and 300 ms apply delays;
# steady / replay paused and resumed / a standby restarted) run for at least 10,000 operations, each history checked for
# read-your-writes and monotonic reads, one table at the end. Takes about 10 minutes on 2 cores. Extra arguments go to the
# program, e.g.:
#   bash build/history.sh                                    # every cell, >= 10,000 operations each
#   bash build/history.sh --guarantees-off                   # and the cells with a guarantee switched off
#   bash build/history.sh --ops 2000 --cells "async/2"       # a quick look at some cells
#   bash build/history.sh --out benchmarks/history-results/history.md
#   bash build/history.sh --visibility-probe 20 sync-rep      # plain Npgsql, synchronous replication (remote_apply)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

# shellcheck source=build/ensure-postgres.sh
source "$root/build/ensure-postgres.sh" >/dev/null
dotnet build benchmarks/EfReplicaInterceptor.HistoryRun -c Release -p:EnableSourceLink=false --nologo -v quiet >&2
exec dotnet benchmarks/EfReplicaInterceptor.HistoryRun/bin/Release/net10.0/EfReplicaInterceptor.HistoryRun.dll "$@"
