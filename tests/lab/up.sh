#!/usr/bin/env bash
# Lay out DIR like the production server's /opt/matrix and start it: PostgreSQL 15 and Synapse
# under Docker Compose on network matrix-net, Synapse on 127.0.0.1:8008, server name echo6.co.
#
# Usage: up.sh DIR
#
# DIR must not exist yet, or be empty. Afterwards it contains:
#   docker-compose.yml        services postgres (matrix-postgres) and synapse (matrix-synapse)
#   synapse/                  Synapse's data volume, with homeserver.yaml from Synapse's --generate-config
#                             edited in place to use PostgreSQL and no trusted key servers
#   postgres/                 PostgreSQL's data directory
#   scripts/pg_backup.sh      the operator's backup script (dumps the synapse database only)
#   backups/                  where pg_backup.sh writes by default
#   .lab-originals/           byte-for-byte copies of the three files above, as up.sh wrote them
#   .lab-postgres-password    the synapse role's password
#
# Environment: LAB_POSTGRES_PASSWORD (default: random), LAB_MAS_PASSWORD (default: random).
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    echo "usage: $0 DIR" >&2
    exit 2
}

check_target() {
    local dir=$1

    if [[ -e "$dir" && -n "$(ls -A "$dir")" ]]; then
        lab_die "$dir exists and is not empty: run tests/lab/down.sh $dir first, or pick another directory"
    fi
    if docker container inspect "$LAB_POSTGRES_CONTAINER" >/dev/null 2>&1 ||
        docker container inspect "$LAB_SYNAPSE_CONTAINER" >/dev/null 2>&1; then
        lab_die "a container named $LAB_POSTGRES_CONTAINER or $LAB_SYNAPSE_CONTAINER already exists: run tests/lab/down.sh on the lab that owns it"
    fi
    command -v python3 >/dev/null || lab_die "python3 is missing on this machine: install it (apt-get install python3)"
}

write_compose_file() {
    local dir=$1 postgres_password=$2 mas_password=$3

    cat >"$dir/docker-compose.yml" <<EOF
services:
  postgres:
    image: rb6-lab-postgres:lab
    container_name: $LAB_POSTGRES_CONTAINER
    restart: unless-stopped
    environment:
      POSTGRES_USER: synapse
      POSTGRES_PASSWORD: "$postgres_password"
      POSTGRES_DB: synapse
      MAS_POSTGRES_PASSWORD: "$mas_password"
    volumes:
      - ./postgres:/var/lib/postgresql/data
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -U synapse -d synapse"]
      interval: 5s
      timeout: 5s
      retries: 12
    networks:
      - $LAB_NETWORK

  synapse:
    image: rb6-lab-synapse:lab
    container_name: $LAB_SYNAPSE_CONTAINER
    restart: unless-stopped
    depends_on:
      postgres:
        condition: service_healthy
    ports:
      - "127.0.0.1:8008:8008"
    volumes:
      - ./synapse:/data
    networks:
      - $LAB_NETWORK

networks:
  $LAB_NETWORK:
    name: $LAB_NETWORK
EOF
}

write_backup_script() {
    local dir=$1

    cat >"$dir/scripts/pg_backup.sh" <<EOF
#!/bin/bash
# Nightly dump of the Synapse database, run from cron on the host.
set -euo pipefail

BACKUP_DIR="\${BACKUP_DIR:-$dir/backups}"
TIMESTAMP=\$(date +%Y%m%d_%H%M%S)

mkdir -p "\${BACKUP_DIR}"

docker exec matrix-postgres pg_dump -U synapse -d synapse | gzip > "\${BACKUP_DIR}/synapse_\${TIMESTAMP}.sql.gz"
echo "\$(date): Backup created: \${BACKUP_DIR}/synapse_\${TIMESTAMP}.sql.gz"

# Keep two weeks of dumps.
find "\${BACKUP_DIR}" -name "synapse_*.sql.gz" -mtime +14 -delete
echo "\$(date): Backups older than 14 days removed from \${BACKUP_DIR}"
EOF
    chmod 0755 "$dir/scripts/pg_backup.sh"
}

# Write homeserver.yaml with Synapse's own generator, in a container without network access.
generate_synapse_config() {
    local dir=$1

    docker run --rm --network none --workdir /data \
        -e SYNAPSE_SERVER_NAME="$LAB_SERVER_NAME" -e SYNAPSE_REPORT_STATS=no \
        -v "$dir/synapse:/data" rb6-lab-synapse:lab generate >/dev/null
}

# Point the generated homeserver.yaml at PostgreSQL and away from matrix.org, keeping its comments.
edit_synapse_config() {
    local dir=$1 postgres_password=$2

    LAB_PASSWORD="$postgres_password" python3 - "$dir/synapse/homeserver.yaml" <<'PY'
import os
import re
import sys

path = sys.argv[1]
with open(path, encoding="utf-8") as handle:
    text = handle.read()

def replace(pattern, replacement):
    global text
    text, count = re.subn(pattern, replacement, text, count=1, flags=re.MULTILINE)
    if count != 1:
        sys.exit(f"edit_synapse_config: pattern {pattern!r} not found in {path}")

password = os.environ["LAB_PASSWORD"]
replace(r"^database:\n(?:  .*\n)+",
        "database:\n"
        "  name: psycopg2\n"
        "  args:\n"
        "    user: synapse\n"
        f"    password: \"{password}\"\n"
        "    dbname: synapse\n"
        "    host: matrix-postgres\n"
        "    cp_min: 5\n"
        "    cp_max: 10\n")
# The generated listener binds loopback only, which Docker's port mapping can't reach.
replace(r"^(  - bind_addresses:\n)(?:    - .*\n)+", "\\1    - 0.0.0.0\n")
replace(r"^trusted_key_servers:\n(?:  .*\n)+", "trusted_key_servers: []\n")
replace(r"^report_stats: .*$", "report_stats: false")

with open(path, "w", encoding="utf-8") as handle:
    handle.write(text)
PY

    # Synapse's generated log config writes to a file only. Add stdout so `docker logs` shows the log.
    sed -i 's/^    handlers: \[buffer\]$/    handlers: [buffer, console]/' "$dir/synapse/$LAB_SERVER_NAME.log.config"
}

check_synapse_config() {
    local config=$1

    if grep -qE '^(experimental_features|app_service_config_files):' "$config"; then
        lab_die "$config unexpectedly sets experimental_features or app_service_config_files"
    fi
    grep -q '^trusted_key_servers: \[\]$' "$config" || lab_die "$config still names trusted key servers"
}

save_originals() {
    local dir=$1

    mkdir -p "$dir/$LAB_MARKER/synapse" "$dir/$LAB_MARKER/scripts"
    cp -p "$dir/docker-compose.yml" "$dir/$LAB_MARKER/docker-compose.yml"
    cp -p "$dir/synapse/homeserver.yaml" "$dir/$LAB_MARKER/synapse/homeserver.yaml"
    cp -p "$dir/scripts/pg_backup.sh" "$dir/$LAB_MARKER/scripts/pg_backup.sh"
}

main() {
    [[ $# -eq 1 ]] || usage
    local dir=$1
    local started=$SECONDS

    check_target "$dir"
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    mkdir -p "$dir/$LAB_MARKER" "$dir/synapse" "$dir/postgres" "$dir/scripts" "$dir/backups"

    "$LAB_DIR/build-images.sh"

    local postgres_password mas_password
    postgres_password="${LAB_POSTGRES_PASSWORD:-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')}"
    mas_password="${LAB_MAS_PASSWORD:-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')}"
    printf '%s\n' "$postgres_password" >"$dir/.lab-postgres-password"
    chmod 0600 "$dir/.lab-postgres-password"

    write_compose_file "$dir" "$postgres_password" "$mas_password"
    write_backup_script "$dir"
    generate_synapse_config "$dir"
    edit_synapse_config "$dir" "$postgres_password"
    check_synapse_config "$dir/synapse/homeserver.yaml"
    save_originals "$dir"

    lab_log "starting the stack in $dir"
    (cd "$dir" && lab_compose up -d) >&2
    lab_wait_for_synapse 180

    lab_log "Synapse answers on $LAB_SYNAPSE_URL; lab up in $((SECONDS - started)) s"
}

main "$@"
