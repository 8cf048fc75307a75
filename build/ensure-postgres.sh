#!/usr/bin/env bash
# Makes sure the PostgreSQL server programs the test harness runs (initdb, pg_ctl, postgres,
# pg_basebackup) are installed, and prints the folder that holds them (one line on stdout).
# Looks where EfReplicaInterceptor.Testing's PostgresBinaries.Locate() looks, in the same order:
# $EFREPLICA_PG_BIN, `pg_config --bindir`, the highest /usr/lib/postgresql/*/bin, PATH.
# When they are missing it installs the `postgresql` package with apt-get (as root, or through
# sudo); otherwise it prints what to run and exits 1. Quiet and quick when they are there.
#
# Usage: bin_dir=$(bash build/ensure-postgres.sh)
#    or: source build/ensure-postgres.sh  (sets and exports EFREPLICA_PG_BIN; returns 1 on failure)

efreplica_pg_programs=(initdb pg_ctl postgres pg_basebackup)

efreplica_pg_has_all() {
  local dir=$1 program
  [[ -n "$dir" && -d "$dir" ]] || return 1
  for program in "${efreplica_pg_programs[@]}"; do
    [[ -x "$dir/$program" ]] || return 1
  done
}

efreplica_pg_find() {
  local dir candidate
  if [[ -n "${EFREPLICA_PG_BIN:-}" ]]; then
    if efreplica_pg_has_all "$EFREPLICA_PG_BIN"; then
      printf '%s\n' "$EFREPLICA_PG_BIN"
      return 0
    fi
    echo "ensure-postgres: EFREPLICA_PG_BIN=$EFREPLICA_PG_BIN does not contain ${efreplica_pg_programs[*]}; point it at the server's bin folder (e.g. /usr/lib/postgresql/15/bin) or unset it." >&2
    return 2
  fi

  if command -v pg_config >/dev/null 2>&1; then
    dir=$(pg_config --bindir 2>/dev/null || true)
    if efreplica_pg_has_all "$dir"; then
      printf '%s\n' "$dir"
      return 0
    fi
  fi

  if [[ -d /usr/lib/postgresql ]]; then
    dir=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -type d -printf '%f\n' 2>/dev/null | grep -E '^[0-9]+(\.[0-9]+)*$' | sort -V -r | while read -r version; do
      if efreplica_pg_has_all "/usr/lib/postgresql/$version/bin"; then
        printf '%s\n' "/usr/lib/postgresql/$version/bin"
        break
      fi
    done) || true
    if [[ -n "$dir" ]]; then
      printf '%s\n' "$dir"
      return 0
    fi
  fi

  candidate=$(command -v postgres 2>/dev/null || true)
  if [[ -n "$candidate" ]]; then
    # PATH often holds symbolic links to some of the programs only; the real folder has all of them.
    dir=$(dirname "$(readlink -f "$candidate")")
    if efreplica_pg_has_all "$dir"; then
      printf '%s\n' "$dir"
      return 0
    fi
    dir=$(dirname "$candidate")
    if efreplica_pg_has_all "$dir"; then
      printf '%s\n' "$dir"
      return 0
    fi
  fi
  return 1
}

efreplica_pg_install() {
  local install_hint="sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql"
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-postgres: the PostgreSQL server programs (${efreplica_pg_programs[*]}) are not installed and this machine has no apt-get." >&2
    echo "ensure-postgres: install the PostgreSQL server with your package manager, then set EFREPLICA_PG_BIN to the folder holding them if they are not on PATH." >&2
    return 1
  fi

  local -a as_root=()
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
      as_root=(sudo)
    else
      echo "ensure-postgres: the PostgreSQL server programs (${efreplica_pg_programs[*]}) are not installed, and installing them needs root." >&2
      echo "ensure-postgres: run as root:  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql" >&2
      echo "ensure-postgres: (or with sudo:  $install_hint), or set EFREPLICA_PG_BIN to an existing installation's bin folder." >&2
      return 1
    fi
  fi

  echo "ensure-postgres: PostgreSQL server programs not found; installing the 'postgresql' package with apt-get..." >&2
  if ! "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 \
    || ! "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2; then
    echo "ensure-postgres: installing PostgreSQL failed; run it yourself:  $install_hint" >&2
    return 1
  fi
}

efreplica_pg_main() {
  local dir status=0
  dir=$(efreplica_pg_find) || status=$?
  if [[ $status -eq 2 ]]; then
    return 1
  fi
  if [[ $status -ne 0 ]]; then
    efreplica_pg_install || return 1
    dir=$(efreplica_pg_find) || {
      echo "ensure-postgres: the 'postgresql' package is installed but ${efreplica_pg_programs[*]} were still not found; set EFREPLICA_PG_BIN to their folder." >&2
      return 1
    }
  fi
  EFREPLICA_PG_BIN=$dir
  export EFREPLICA_PG_BIN
  printf '%s\n' "$dir"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  efreplica_pg_main
else
  # Sourced: set EFREPLICA_PG_BIN in the caller's shell, print nothing, leave its shell options alone.
  efreplica_pg_main >/dev/null
fi
