#!/usr/bin/env bash
# Make a local PostgreSQL available for the end-to-end tests (idempotent):
# install Debian's `postgresql` if missing, start the first cluster, create the test role.
# Prints `export TEST_PG_PORT=<port>` on stdout for the caller to eval; the rest goes to stderr.
set -euo pipefail

as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

if ! command -v pg_lsclusters >/dev/null 2>&1; then
  echo "PostgreSQL is not installed: installing Debian's postgresql package..." >&2
  as_root apt-get update -qq >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
fi
if [ -z "$(pg_lsclusters --no-header)" ]; then
  version=$(ls /usr/lib/postgresql | sort -V | tail -1)
  as_root pg_createcluster "$version" main >/dev/null
fi

read -r version cluster port status _ <<<"$(pg_lsclusters --no-header | head -1)"
if [ "$status" != "online" ]; then
  as_root pg_ctlcluster "$version" "$cluster" start >&2
fi

role=tap_botpenguin
if ! as_postgres psql -p "$port" -tAc "select 1 from pg_roles where rolname = '$role'" | grep -q 1; then
  as_postgres psql -p "$port" -q -c "create role $role login createdb password '$role'"
fi
if ! as_postgres psql -p "$port" -tAc "select 1 from pg_database where datname = '$role'" | grep -q 1; then
  as_postgres psql -p "$port" -q -c "create database $role owner $role"
fi
# Deliberately not UTC: a test that assumes the server's time zone fails here, not on a user's.
as_postgres psql -p "$port" -q -c "alter role $role set timezone to 'Asia/Kolkata'"
echo "PostgreSQL $version/$cluster is up on port $port (role and database: $role)" >&2
echo "export TEST_PG_PORT=$port"
