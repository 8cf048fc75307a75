#!/usr/bin/env bash
# Makes sure the connection pooler the PgBouncer tests put in front of the servers is installed: PgBouncer (1.18, Debian's
# `pgbouncer` package). Prints the `pgbouncer` program on stdout.
# Looks where EfReplicaInterceptor.Testing's PgBouncer looks, in the same order: $EFREPLICA_PGBOUNCER, then PATH, then
# /usr/sbin and /usr/bin.
# When it is missing it installs Debian's `pgbouncer` package with apt-get (as root, or through sudo), without letting the
# package start its service (the tests start their own PgBouncer processes on free loopback ports), and stops and disables
# that service if it was started anyway; otherwise it prints what to run and exits 1. Quiet and quick when it is there.
#
# Usage: pgbouncer=$(bash build/ensure-pgbouncer.sh)
#    or: source build/ensure-pgbouncer.sh  (sets and exports EFREPLICA_PGBOUNCER; returns 1 on failure)

efreplica_pgbouncer_packages=(pgbouncer)

efreplica_pgbouncer_find() {
  local value=${EFREPLICA_PGBOUNCER:-} candidate
  if [[ -n "$value" ]]; then
    if [[ -x "$value" && ! -d "$value" ]]; then
      printf '%s\n' "$value"
      return 0
    fi
    echo "ensure-pgbouncer: EFREPLICA_PGBOUNCER=$value is not an executable file; point it at the 'pgbouncer' program or unset it." >&2
    return 2
  fi
  candidate=$(command -v pgbouncer 2>/dev/null || true)
  for directory in /usr/sbin /usr/bin; do
    if [[ -z "$candidate" && -x "$directory/pgbouncer" ]]; then
      candidate=$directory/pgbouncer
    fi
  done
  [[ -n "$candidate" ]] || return 1
  printf '%s\n' "$candidate"
}

# Stops a PgBouncer the package may have started as a service (on a machine whose service manager starts services on
# install): it would hold port 6432 and keep running.
efreplica_pgbouncer_stop_service() {
  local -a as_root=("$@")
  if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
    "${as_root[@]}" systemctl disable --now pgbouncer.service >/dev/null 2>&1 || true
  elif [[ -x /etc/init.d/pgbouncer ]]; then
    "${as_root[@]}" /etc/init.d/pgbouncer stop >/dev/null 2>&1 || true
    if command -v update-rc.d >/dev/null 2>&1; then
      "${as_root[@]}" update-rc.d pgbouncer disable >/dev/null 2>&1 || true
    fi
  fi
}

efreplica_pgbouncer_apt_install() {
  "$@" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${efreplica_pgbouncer_packages[@]}" >&2
}

efreplica_pgbouncer_install() {
  local install_hint="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${efreplica_pgbouncer_packages[*]}"
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-pgbouncer: PgBouncer is not installed and this machine has no apt-get." >&2
    echo "ensure-pgbouncer: install PgBouncer 1.18+ with your package manager, then set EFREPLICA_PGBOUNCER if it is not on PATH." >&2
    return 1
  fi

  local -a as_root=()
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
      as_root=(sudo)
    else
      echo "ensure-pgbouncer: PgBouncer is not installed, and installing it needs root." >&2
      echo "ensure-pgbouncer: run as root:  $install_hint" >&2
      echo "ensure-pgbouncer: (or set EFREPLICA_PGBOUNCER to an existing program)." >&2
      return 1
    fi
  fi

  # Keep the package's maintainer scripts from starting its service (invoke-rc.d asks policy-rc.d); only for this install,
  # and only when the machine has no policy of its own.
  local policy=/usr/sbin/policy-rc.d made_policy=0
  if [[ ! -e $policy ]]; then
    if printf '#!/bin/sh\n# Left by build/ensure-pgbouncer.sh while it installs; removed afterwards.\nexit 101\n' \
      | "${as_root[@]}" tee "$policy" >/dev/null && "${as_root[@]}" chmod 755 "$policy"; then
      made_policy=1
    fi
  fi

  echo "ensure-pgbouncer: PgBouncer not found; installing ${efreplica_pgbouncer_packages[*]} with apt-get..." >&2
  local status=0 updated=0
  # One `apt-get update`, skipped when the package lists already know the package; done after all when installing from
  # those lists fails (they were stale).
  if ! apt-cache show "${efreplica_pgbouncer_packages[@]}" >/dev/null 2>&1; then
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 || status=1
    updated=1
  fi
  if ((status == 0)) && ! efreplica_pgbouncer_apt_install "${as_root[@]}"; then
    if ((updated)) \
      || ! "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 \
      || ! efreplica_pgbouncer_apt_install "${as_root[@]}"; then
      status=1
    fi
  fi
  if ((made_policy)); then
    "${as_root[@]}" rm -f "$policy" || true
  fi
  efreplica_pgbouncer_stop_service "${as_root[@]}"
  if ((status != 0)); then
    echo "ensure-pgbouncer: installing PgBouncer failed; run it yourself:  $install_hint" >&2
    return 1
  fi
}

efreplica_pgbouncer_main() {
  local found status=0
  found=$(efreplica_pgbouncer_find) || status=$?
  if [[ $status -eq 2 ]]; then
    return 1
  fi
  if [[ $status -ne 0 ]]; then
    efreplica_pgbouncer_install || return 1
    found=$(efreplica_pgbouncer_find) || {
      echo "ensure-pgbouncer: the package ${efreplica_pgbouncer_packages[*]} is installed but the pgbouncer program was still not found; set EFREPLICA_PGBOUNCER." >&2
      return 1
    }
  fi
  EFREPLICA_PGBOUNCER=$found
  export EFREPLICA_PGBOUNCER
  printf '%s\n' "$found"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  efreplica_pgbouncer_main
else
  # Sourced: set EFREPLICA_PGBOUNCER in the caller's shell, print nothing, leave its shell options alone.
  efreplica_pgbouncer_main >/dev/null
fi
