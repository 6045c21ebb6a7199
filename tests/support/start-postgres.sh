#!/usr/bin/env bash
# Starts a throwaway PostgreSQL 15 server for the tests on 127.0.0.1:54329 with superuser rb6 and
# password authentication (scram-sha-256), unless a server already accepts connections on that port.
# Installs Debian's postgresql-15 when its binaries are missing. Prints the connection URL that the
# tests read from RB6_TEST_PG_URL.
set -euo pipefail

port=54329
user=rb6
password=rb6-test-password
bindir=/usr/lib/postgresql/15/bin
datadir=${RB6_TEST_PG_DIR:-/tmp/rb6-test-pg-$port}
url="postgres://$user:$password@127.0.0.1:$port/postgres"

if [ ! -x "$bindir/postgres" ]; then
    echo "start-postgres.sh: installing postgresql-15 from apt" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >&2
fi

# PostgreSQL refuses to run as root, so root runs the server as the postgres system user.
as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

if "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port"; then
    echo "$url"
    exit 0
fi

if [ ! -f "$datadir/PG_VERSION" ]; then
    rm -rf "$datadir"
    mkdir -p "$datadir"
    pwfile=$(mktemp)
    printf '%s\n' "$password" > "$pwfile"
    if [ "$(id -u)" = 0 ]; then chown postgres "$datadir" "$pwfile"; fi
    as_owner "$bindir/initdb" -D "$datadir" -U "$user" --pwfile="$pwfile" \
        --auth=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >&2
    rm -f "$pwfile"
fi

as_owner "$bindir/pg_ctl" -D "$datadir" -l "$datadir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $datadir" start >&2

echo "$url"
