# Shared helpers of the lab scripts. Source this file, don't run it.

LAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# Names fixed by the production layout that the lab copies.
LAB_POSTGRES_CONTAINER=matrix-postgres
LAB_SYNAPSE_CONTAINER=matrix-synapse
LAB_BRIDGE_CONTAINER=mautrix-signal
LAB_NETWORK=matrix-net
LAB_SERVER_NAME=echo6.co
LAB_SYNAPSE_URL=http://127.0.0.1:8008

# File that up.sh creates first in a lab directory; down.sh deletes only directories that have it.
LAB_MARKER=.lab-originals

lab_log() {
    echo "lab: $*" >&2
}

lab_die() {
    lab_log "$*"
    exit 1
}

# Run the compose tool that exists: `docker compose` (v2) or `docker-compose` (v1).
lab_compose() {
    if docker compose version >/dev/null 2>&1; then
        docker compose "$@"
    elif command -v docker-compose >/dev/null; then
        docker-compose "$@"
    else
        lab_die "neither 'docker compose' nor 'docker-compose' is installed: install one (apt-get install docker-compose)"
    fi
}

# Wait until Synapse answers /_matrix/client/versions, at most $1 seconds (default 180).
lab_wait_for_synapse() {
    local timeout=${1:-180}
    local deadline=$((SECONDS + timeout))

    until curl -fsS -o /dev/null "$LAB_SYNAPSE_URL/_matrix/client/versions" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            docker logs --tail 40 "$LAB_SYNAPSE_CONTAINER" >&2 || true
            lab_die "Synapse did not answer $LAB_SYNAPSE_URL/_matrix/client/versions within $timeout s; its last log lines are above"
        fi
        sleep 1
    done
}

# Register a local user with Synapse's shared-secret registration: lab_register_user NAME PASSWORD [--admin].
lab_register_user() {
    local name=$1 password=$2 admin_flag=${3:---no-admin}

    docker exec "$LAB_SYNAPSE_CONTAINER" register_new_matrix_user \
        -c /data/homeserver.yaml -u "$name" -p "$password" "$admin_flag" http://localhost:8008
}

# Log in a local user and print its access token: lab_login NAME PASSWORD.
lab_login() {
    local name=$1 password=$2

    curl -fsS -X POST "$LAB_SYNAPSE_URL/_matrix/client/v3/login" \
        -H 'Content-Type: application/json' \
        -d "{\"type\":\"m.login.password\",\"identifier\":{\"type\":\"m.id.user\",\"user\":\"$name\"},\"password\":\"$password\"}" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])'
}
