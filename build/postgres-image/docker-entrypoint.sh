#!/bin/bash
# Entry point of the locally built efreplica/postgres image. It follows the conventions of the
# official `postgres` images, so the test harness treats both alike:
#   - POSTGRES_PASSWORD (required), POSTGRES_USER (default postgres), POSTGRES_DB (default
#     $POSTGRES_USER), POSTGRES_INITDB_ARGS, PGDATA;
#   - arguments starting with '-' are options for `postgres`; any other command is run as given;
#   - started as root, it prepares $PGDATA and the socket folder, then runs as the postgres user;
#   - an empty $PGDATA is initialised (superuser with a SCRAM password, the database, TCP
#     connections from any address with a password); a non-empty one is used as it is.
# /docker-entrypoint-initdb.d scripts are not supported: the harness does not use them.
set -Eeuo pipefail

if [[ $# -eq 0 || "${1:0:1}" == '-' ]]; then
  set -- postgres "$@"
fi

if [[ "$1" != postgres ]]; then
  exec "$@"
fi

if [[ "$(id -u)" == 0 ]]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"
  chmod 2775 /var/run/postgresql
  exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
  if [[ -z "${POSTGRES_PASSWORD:-}" ]]; then
    echo "docker-entrypoint: POSTGRES_PASSWORD must be set (as for the official postgres images)." >&2
    exit 1
  fi
  user=${POSTGRES_USER:-postgres}
  database=${POSTGRES_DB:-$user}
  password_file=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" > "$password_file"
  # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of options, split on purpose.
  initdb --username="$user" --pwfile="$password_file" --auth-local=trust --auth-host=scram-sha-256 \
    -D "$PGDATA" ${POSTGRES_INITDB_ARGS:-} >/dev/null
  rm -f "$password_file"
  printf 'host all all all scram-sha-256\n' >> "$PGDATA/pg_hba.conf"
  printf "listen_addresses = '*'\n" >> "$PGDATA/postgresql.conf"
  if [[ "$database" != postgres ]]; then
    escaped=${database//\"/\"\"}
    printf 'CREATE DATABASE "%s";\n' "$escaped" | postgres --single -j -D "$PGDATA" postgres >/dev/null
  fi
  echo "docker-entrypoint: initialised $PGDATA (user $user, database $database)." >&2
fi

exec "$@"
