#!/usr/bin/env bash
# Makes sure a Docker engine answers, for the container backend of the test harness
# (EFREPLICA_TEST_BACKEND=containers): installs Debian's `docker.io` package when `dockerd` is missing,
# starts `dockerd` in the background when no engine answers (overlay2 first, then vfs where the
# file system cannot carry overlay2), and waits until `docker info` works. Needs root to install or
# start anything; quiet and quick when the engine is already up.
#
# Usage: bash build/ensure-docker.sh
# Environment: EFREPLICA_DOCKERD_LOG, where dockerd writes (default /var/log/efreplica-dockerd.log).
set -euo pipefail

log() { echo "ensure-docker: $*" >&2; }
engine_answers() { docker info >/dev/null 2>&1; }

if command -v docker >/dev/null 2>&1 && engine_answers; then
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  log "no Docker engine answers, and installing or starting one needs root."
  log "as root:  apt-get update && apt-get install -y docker.io && dockerd &   (or use EFREPLICA_TEST_BACKEND=local)"
  exit 1
fi

if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
  log "installing Debian's docker.io package with apt-get..."
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q docker.io >&2; then
    apt-get update -q >&2
    apt-get install -y -q docker.io >&2
  fi
fi

dockerd_log=${EFREPLICA_DOCKERD_LOG:-/var/log/efreplica-dockerd.log}

# Starts dockerd detached from this shell (own session, no inherited output), so that whoever reads
# this script's output is not kept waiting by the engine, and waits up to $2 seconds for it.
start_dockerd() {
  local driver=$1 wait_seconds=$2
  log "starting dockerd (storage driver $driver), log in $dockerd_log..."
  setsid dockerd --storage-driver="$driver" </dev/null >>"$dockerd_log" 2>&1 &
  local pid=$!
  for ((i = 0; i < wait_seconds * 4; i++)); do
    if engine_answers; then
      log "Docker engine $(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})' 2>/dev/null) is up."
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      log "dockerd (storage driver $driver) exited; last lines of its log:"
      tail -n 15 "$dockerd_log" >&2 || true
      return 1
    fi
    sleep 0.25
  done
  log "dockerd (storage driver $driver) did not answer within $wait_seconds s; stopping it."
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  return 1
}

# A dockerd that is running but not answering yet (started by someone else a moment ago): give it time.
if pgrep -x dockerd >/dev/null 2>&1; then
  for ((i = 0; i < 120; i++)); do
    engine_answers && exit 0
    sleep 0.25
  done
  log "a dockerd process runs but does not answer; check it (docker info)."
  exit 1
fi

# A stale pid file from an engine that died would stop the new one from starting.
if [[ -f /var/run/docker.pid ]] && ! kill -0 "$(cat /var/run/docker.pid 2>/dev/null)" 2>/dev/null; then
  rm -f /var/run/docker.pid
fi

start_dockerd overlay2 60 || start_dockerd vfs 60 || {
  log "could not start a Docker engine (see $dockerd_log)."
  exit 1
}
