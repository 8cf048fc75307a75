#!/usr/bin/env bash
# Makes sure the HA manager the Patroni tests run is installed: Patroni (with its etcd v3 client
# module) and an etcd server. Prints two lines on stdout: the `patroni` program, then the `etcd` one.
# Looks where EfReplicaInterceptor.Testing's PatroniCluster looks, in the same order:
# $EFREPLICA_PATRONI / $EFREPLICA_ETCD, then PATH, then /usr/bin.
# When one is missing it installs Debian's `patroni`, `etcd-server` and `python3-etcd` packages with
# apt-get (as root, or through sudo), without letting the packages start an etcd service (the tests
# start their own etcd on free loopback ports); otherwise it prints what to run and exits 1.
# Quiet and quick when they are there.
#
# Usage: { read -r patroni; read -r etcd; } < <(bash build/ensure-patroni.sh)
#    or: source build/ensure-patroni.sh  (sets and exports EFREPLICA_PATRONI and EFREPLICA_ETCD;
#        returns 1 on failure)

efreplica_patroni_packages=(patroni etcd-server python3-etcd)

# $1: the variable's name, $2: the program's name. Prints its path.
efreplica_patroni_find_program() {
  local variable=$1 program=$2 value candidate
  value=${!variable:-}
  if [[ -n "$value" ]]; then
    if [[ -x "$value" && ! -d "$value" ]]; then
      printf '%s\n' "$value"
      return 0
    fi
    echo "ensure-patroni: $variable=$value is not an executable file; point it at the '$program' program or unset it." >&2
    return 2
  fi
  candidate=$(command -v "$program" 2>/dev/null || true)
  if [[ -z "$candidate" && -x "/usr/bin/$program" ]]; then
    candidate=/usr/bin/$program
  fi
  [[ -n "$candidate" ]] || return 1
  printf '%s\n' "$candidate"
}

# Patroni's `etcd3:` store is written on top of the python-etcd client (its errors and its base
# client class): the `patroni` package only recommends it, so a Patroni without it cannot start.
efreplica_patroni_has_etcd_client() {
  local patroni=$1 python
  python=$(head -n 1 "$patroni" 2>/dev/null | sed -n 's/^#![[:space:]]*\([^[:space:]]*\).*/\1/p')
  [[ -n "$python" && -x "$python" ]] || python=$(command -v python3 2>/dev/null || true)
  [[ -n "$python" ]] || return 1
  "$python" -c 'import etcd, patroni.dcs.etcd3' >/dev/null 2>&1
}

efreplica_patroni_find() {
  local patroni etcd status=0
  patroni=$(efreplica_patroni_find_program EFREPLICA_PATRONI patroni) || status=$?
  if [[ $status -eq 2 ]]; then return 2; fi
  etcd=$(efreplica_patroni_find_program EFREPLICA_ETCD etcd) || {
    local etcd_status=$?
    if [[ $etcd_status -eq 2 ]]; then return 2; fi
    status=1
  }
  [[ $status -eq 0 ]] || return 1
  efreplica_patroni_has_etcd_client "$patroni" || return 1
  printf '%s\n%s\n' "$patroni" "$etcd"
}

# Stops an etcd the package may have started as a service (on a machine whose service manager starts
# services on install): it would hold the default ports and keep running.
efreplica_patroni_stop_etcd_service() {
  local -a as_root=("$@")
  if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
    "${as_root[@]}" systemctl disable --now etcd.service >/dev/null 2>&1 || true
    "${as_root[@]}" systemctl disable --now patroni.service >/dev/null 2>&1 || true
  elif [[ -x /etc/init.d/etcd ]]; then
    "${as_root[@]}" /etc/init.d/etcd stop >/dev/null 2>&1 || true
    if command -v update-rc.d >/dev/null 2>&1; then
      "${as_root[@]}" update-rc.d etcd disable >/dev/null 2>&1 || true
    fi
  fi
}

efreplica_patroni_apt_install() {
  "$@" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${efreplica_patroni_packages[@]}" >&2
}

efreplica_patroni_install() {
  local install_hint="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${efreplica_patroni_packages[*]}"
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-patroni: Patroni and etcd are not installed and this machine has no apt-get." >&2
    echo "ensure-patroni: install Patroni 3 (with its etcd client) and etcd 3.4+ with your package manager, then set EFREPLICA_PATRONI and EFREPLICA_ETCD if they are not on PATH." >&2
    return 1
  fi

  local -a as_root=()
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
      as_root=(sudo)
    else
      echo "ensure-patroni: Patroni and etcd are not installed, and installing them needs root." >&2
      echo "ensure-patroni: run as root:  $install_hint" >&2
      echo "ensure-patroni: (or set EFREPLICA_PATRONI and EFREPLICA_ETCD to existing programs)." >&2
      return 1
    fi
  fi

  # Keep the packages' maintainer scripts from starting services (invoke-rc.d asks policy-rc.d);
  # only for this install, and only when the machine has no policy of its own.
  local policy=/usr/sbin/policy-rc.d made_policy=0
  if [[ ! -e $policy ]]; then
    if printf '#!/bin/sh\n# Left by build/ensure-patroni.sh while it installs; removed afterwards.\nexit 101\n' \
      | "${as_root[@]}" tee "$policy" >/dev/null && "${as_root[@]}" chmod 755 "$policy"; then
      made_policy=1
    fi
  fi

  echo "ensure-patroni: Patroni or etcd not found; installing ${efreplica_patroni_packages[*]} with apt-get..." >&2
  local status=0 updated=0
  # One `apt-get update`, skipped when the package lists already know all three packages (ensure-postgres.sh may just have
  # updated them); done after all when installing from those lists fails (they were stale).
  if ! apt-cache show "${efreplica_patroni_packages[@]}" >/dev/null 2>&1; then
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 || status=1
    updated=1
  fi
  if ((status == 0)) && ! efreplica_patroni_apt_install "${as_root[@]}"; then
    if ((updated)) \
      || ! "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 \
      || ! efreplica_patroni_apt_install "${as_root[@]}"; then
      status=1
    fi
  fi
  if ((made_policy)); then
    "${as_root[@]}" rm -f "$policy" || true
  fi
  efreplica_patroni_stop_etcd_service "${as_root[@]}"
  if ((status != 0)); then
    echo "ensure-patroni: installing Patroni and etcd failed; run it yourself:  $install_hint" >&2
    return 1
  fi
}

efreplica_patroni_main() {
  local found status=0
  found=$(efreplica_patroni_find) || status=$?
  if [[ $status -eq 2 ]]; then
    return 1
  fi
  if [[ $status -ne 0 ]]; then
    efreplica_patroni_install || return 1
    found=$(efreplica_patroni_find) || {
      echo "ensure-patroni: the packages ${efreplica_patroni_packages[*]} are installed but patroni, etcd or Patroni's etcd3 module were still not found; set EFREPLICA_PATRONI and EFREPLICA_ETCD." >&2
      return 1
    }
  fi
  EFREPLICA_PATRONI=$(sed -n 1p <<<"$found")
  EFREPLICA_ETCD=$(sed -n 2p <<<"$found")
  export EFREPLICA_PATRONI EFREPLICA_ETCD
  printf '%s\n' "$found"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  efreplica_patroni_main
else
  # Sourced: set EFREPLICA_PATRONI and EFREPLICA_ETCD in the caller's shell, print nothing, leave its
  # shell options alone.
  efreplica_patroni_main >/dev/null
fi
