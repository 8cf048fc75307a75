#!/usr/bin/env bash
# Builds the PostgreSQL image the container backend of EfReplicaInterceptor.Testing runs
# (EFREPLICA_TEST_BACKEND=containers), locally, from Debian's packages: no container registry is
# needed. A minimal Debian root file system with the postgresql-$major package is made with
# debootstrap from the mirror apt already uses, our entry point (postgres-image/docker-entrypoint.sh,
# which follows the official postgres images' conventions) is added, and the tree is `docker import`ed.
#
# Usage: bash build/postgres-image.sh [--force]
# Environment:
#   EFREPLICA_TEST_IMAGE   the tag to build, default efreplica/postgres:15
#   EFREPLICA_IMAGE_SUITE  the Debian suite, default bookworm (its PostgreSQL is 15)
#   EFREPLICA_IMAGE_MIRROR the Debian mirror, default: the first one in apt's sources
# The image is rebuilt only when this script or the entry point changed (a hash of both is kept in
# the image's environment) or with --force. Needs root (debootstrap) and a running Docker engine.
# Prints the tag on its last line.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tag=${EFREPLICA_TEST_IMAGE:-efreplica/postgres:15}
suite=${EFREPLICA_IMAGE_SUITE:-bookworm}
major=15
entrypoint="$root/build/postgres-image/docker-entrypoint.sh"
force=false
[[ "${1:-}" == --force ]] && force=true

log() { echo "postgres-image: $*" >&2; }

recipe=$(cat "${BASH_SOURCE[0]}" "$entrypoint" | sha256sum | cut -c1-16)
if ! $force && existing=$(docker image inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$tag" 2>/dev/null); then
  if grep -qx "EFREPLICA_IMAGE_RECIPE=$recipe" <<<"$existing"; then
    log "$tag is up to date (recipe $recipe)."
    echo "$tag"
    exit 0
  fi
  log "$tag exists but was built by another recipe; rebuilding."
fi

if [[ $(id -u) -ne 0 ]]; then
  log "building the image needs root (debootstrap); run: sudo bash build/postgres-image.sh"
  exit 1
fi

if ! command -v debootstrap >/dev/null 2>&1; then
  log "installing debootstrap with apt-get..."
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >&2 \
    || { DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >&2; }
fi

mirror=${EFREPLICA_IMAGE_MIRROR:-}
if [[ -z "$mirror" ]]; then
  mirror=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v -- '-security' | head -n1 || true)
fi
if [[ -z "$mirror" ]]; then
  mirror=$(grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | grep -v -- '-security' | head -n1 || true)
fi
if [[ -z "$mirror" ]]; then
  log "no Debian mirror found in apt's sources; set EFREPLICA_IMAGE_MIRROR."
  exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/efreplica-image.XXXXXX")
cleanup() {
  # debootstrap may leave /proc and /sys mounted in the tree after a failure.
  for mount in proc sys dev/pts dev; do
    mountpoint -q "$work/rootfs/$mount" 2>/dev/null && umount -l "$work/rootfs/$mount" || true
  done
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT
rootfs="$work/rootfs"

log "debootstrap $suite (minbase + postgresql-$major) from $mirror into $rootfs..."
start=$SECONDS
if ! debootstrap --variant=minbase --include="postgresql-$major,postgresql-client-$major" \
  "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1; then
  tail -n 30 "$work/debootstrap.log" >&2
  [[ -f "$rootfs/debootstrap/debootstrap.log" ]] && tail -n 30 "$rootfs/debootstrap/debootstrap.log" >&2
  log "debootstrap failed (log above)."
  exit 1
fi
log "debootstrap took $((SECONDS - start)) s."

# The package's post-install script made a 'main' cluster; the image's servers are made by the
# entry point in $PGDATA instead.
rm -rf "$rootfs/var/lib/postgresql/$major" "$rootfs/etc/postgresql/$major"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
  "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
install -m 0755 "$entrypoint" "$rootfs/usr/local/bin/docker-entrypoint.sh"
mkdir -p "$rootfs/var/lib/postgresql/data" "$rootfs/var/run/postgresql"
chroot "$rootfs" chown postgres:postgres /var/lib/postgresql /var/lib/postgresql/data /var/run/postgresql
chmod 700 "$rootfs/var/lib/postgresql/data"
for mount in proc sys dev/pts dev; do
  mountpoint -q "$rootfs/$mount" 2>/dev/null && umount -l "$rootfs/$mount" || true
done

log "importing the tree as $tag..."
tar --numeric-owner -C "$rootfs" -c . | docker import \
  --change "ENV PATH=/usr/lib/postgresql/$major/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  --change "ENV PG_MAJOR=$major" \
  --change "ENV PGDATA=/var/lib/postgresql/data" \
  --change "ENV LANG=C.UTF-8" \
  --change "ENV EFREPLICA_IMAGE_RECIPE=$recipe" \
  --change 'ENTRYPOINT ["docker-entrypoint.sh"]' \
  --change 'CMD ["postgres"]' \
  --change "EXPOSE 5432" \
  - "$tag" >/dev/null
log "built $tag ($(docker image inspect --format '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}')) in $((SECONDS - start)) s."
echo "$tag"
