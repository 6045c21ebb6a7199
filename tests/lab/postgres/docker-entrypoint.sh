#!/bin/bash
# Entrypoint of the lab's PostgreSQL 15 image.
#
# On an empty $PGDATA it runs initdb with superuser $POSTGRES_USER (password $POSTGRES_PASSWORD),
# collation and ctype C and encoding UTF8, allows password (scram-sha-256) logins from any
# network address, creates database $POSTGRES_DB, and creates role `mas` (password
# $MAS_POSTGRES_PASSWORD) owning database `mas`, like the production server whose Matrix
# Authentication Service database lives beside Synapse's. Then it runs postgres in the
# foreground as the postgres user. Environment variable names follow the official postgres image.
set -euo pipefail

POSTGRES_USER="${POSTGRES_USER:-synapse}"
POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
MAS_POSTGRES_PASSWORD="${MAS_POSTGRES_PASSWORD:-mas}"

log() {
    echo "docker-entrypoint: $*" >&2
}

as_postgres() {
    setpriv --reuid=postgres --regid=postgres --init-groups "$@"
}

initialise_data_dir() {
    if [[ -z "${POSTGRES_PASSWORD:-}" ]]; then
        log "POSTGRES_PASSWORD is not set: set it to the superuser's password and start the container again"
        exit 1
    fi

    log "initialising $PGDATA for superuser $POSTGRES_USER"
    mkdir -p "$PGDATA"
    chown postgres:postgres "$PGDATA"
    chmod 0700 "$PGDATA"

    local pwfile
    pwfile="$(mktemp)"
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    chown postgres "$pwfile"
    as_postgres initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" \
        --lc-collate=C --lc-ctype=C -E UTF8 \
        --auth-local=trust --auth-host=scram-sha-256 ${POSTGRES_INITDB_ARGS:-}
    rm -f "$pwfile"

    echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"

    # A server on the Unix socket only, so nothing can connect over the network before setup ends.
    as_postgres pg_ctl -D "$PGDATA" -w -o "-c listen_addresses=''" start >/dev/null

    local psql=(as_postgres psql -v ON_ERROR_STOP=1 -q -U "$POSTGRES_USER")
    if [[ "$POSTGRES_DB" != postgres ]]; then
        "${psql[@]}" -d postgres -c "CREATE DATABASE \"$POSTGRES_DB\""
    fi
    "${psql[@]}" -d postgres -v pw="$MAS_POSTGRES_PASSWORD" <<'SQL'
CREATE ROLE mas LOGIN PASSWORD :'pw';
CREATE DATABASE mas OWNER mas;
SQL

    local script
    for script in /docker-entrypoint-initdb.d/*; do
        case "$script" in
            *.sh) log "running $script"; bash "$script" ;;
            *.sql) log "running $script"; "${psql[@]}" -d "$POSTGRES_DB" -f "$script" ;;
            *) ;;
        esac
    done

    as_postgres pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    log "initialisation complete"
}

if [[ "${1:-}" == postgres ]]; then
    if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
        shopt -s nullglob
        initialise_data_dir
    fi
    exec setpriv --reuid=postgres --regid=postgres --init-groups postgres -D "$PGDATA" "${@:2}"
fi

exec "$@"
