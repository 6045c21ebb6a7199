#!/usr/bin/env bash
# Check a running lab end to end with the mautrix-signal stand-in, doing by hand what a runbook
# would: generate the bridge config, edit it, generate the registration, install it in Synapse,
# restart Synapse, run the bridge on matrix-net, and check that the bot user exists.
#
# Usage: smoke.sh DIR      (DIR from up.sh; the lab is changed afterwards, so run down.sh next)
#
# Prints each Synapse response it checks and exits non-zero on the first failed check.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BRIDGE_IMAGE=dock.mau.dev/mautrix/signal:v0.2603.0
BRIDGE_DB_PASSWORD=smoke-bridge-password

fail() {
    lab_die "FAILED: $*"
}

# Print "STATUS BODY" of a GET request: http_get URL [TOKEN].
http_get() {
    local url=$1 token=${2:-}
    local auth=()
    if [[ -n "$token" ]]; then
        auth=(-H "Authorization: Bearer $token")
    fi
    curl -sS -o /tmp/rb6-lab-smoke-body -w '%{http_code}' "${auth[@]}" "$url"
    echo " $(cat /tmp/rb6-lab-smoke-body)"
    rm -f /tmp/rb6-lab-smoke-body
}

run_bridge_once() {
    local data=$1
    docker run --rm --network none -v "$data:/data" "$BRIDGE_IMAGE"
}

create_bridge_database() {
    docker exec "$LAB_POSTGRES_CONTAINER" psql -v ON_ERROR_STOP=1 -q -U synapse -d postgres \
        -c "CREATE ROLE mautrix_signal LOGIN PASSWORD '$BRIDGE_DB_PASSWORD'" \
        -c "CREATE DATABASE mautrix_signal OWNER mautrix_signal"
}

configure_bridge() {
    local config=$1

    sed -i \
        -e "s#^    uri: postgres://user:password@host/database?sslmode=disable#    uri: postgres://mautrix_signal:$BRIDGE_DB_PASSWORD@$LAB_POSTGRES_CONTAINER/mautrix_signal?sslmode=disable#" \
        -e "s#^    address: http://example.localhost:8008#    address: http://$LAB_SYNAPSE_CONTAINER:8008#" \
        -e "s#^    domain: example.com#    domain: $LAB_SERVER_NAME#" \
        -e "s#^    address: http://localhost:29328#    address: http://$LAB_BRIDGE_CONTAINER:29328#" \
        -e 's#^    hostname: 127.0.0.1#    hostname: 0.0.0.0#' \
        -e 's#^    msc4190: false#    msc4190: true#' \
        -e "s#^        \"example.com\": user#        \"$LAB_SERVER_NAME\": user#" \
        "$config"
}

main() {
    [[ $# -eq 1 ]] || { echo "usage: $0 DIR" >&2; exit 2; }
    local dir
    dir="$(cd "$1" && pwd)"
    local data="$dir/.lab-smoke-bridge"
    mkdir -p "$data"

    lab_log "1. first bridge run writes the default config"
    run_bridge_once "$data"
    [[ -f "$data/config.yaml" ]] || fail "config.yaml missing after the first run"

    create_bridge_database
    configure_bridge "$data/config.yaml"

    lab_log "2. second bridge run writes the registration"
    run_bridge_once "$data"
    [[ -f "$data/registration.yaml" ]] || fail "registration.yaml missing after the second run"
    cat "$data/registration.yaml"

    lab_log "3. install the registration in Synapse and restart it"
    cp "$data/registration.yaml" "$dir/synapse/registration.yaml"
    printf '\napp_service_config_files:\n  - /data/registration.yaml\n' >>"$dir/synapse/homeserver.yaml"
    docker restart "$LAB_SYNAPSE_CONTAINER" >/dev/null
    lab_wait_for_synapse 120

    local as_token
    as_token="$(awk '/^as_token:/ {print $2}' "$data/registration.yaml")"
    echo "whoami with as_token: $(http_get "$LAB_SYNAPSE_URL/_matrix/client/v3/account/whoami" "$as_token")"
    echo "whoami with a wrong token: $(http_get "$LAB_SYNAPSE_URL/_matrix/client/v3/account/whoami" wrong-token)"

    lab_log "4. run the bridge on $LAB_NETWORK as $LAB_BRIDGE_CONTAINER"
    docker run -d --name "$LAB_BRIDGE_CONTAINER" --network "$LAB_NETWORK" -v "$data:/data" "$BRIDGE_IMAGE" >/dev/null
    local deadline=$((SECONDS + 60))
    until docker logs "$LAB_BRIDGE_CONTAINER" 2>&1 | grep -q 'Bridge started'; do
        if ((SECONDS >= deadline)) || [[ "$(docker inspect -f '{{.State.Running}}' "$LAB_BRIDGE_CONTAINER")" != true ]]; then
            docker logs "$LAB_BRIDGE_CONTAINER" >&2
            fail "the bridge did not log 'Bridge started' within 60 s"
        fi
        sleep 1
    done
    docker logs "$LAB_BRIDGE_CONTAINER"

    local profile
    profile="$(http_get "$LAB_SYNAPSE_URL/_matrix/client/v3/profile/@signalbot:$LAB_SERVER_NAME")"
    echo "bot profile: $profile"
    [[ "$profile" == '200 {"displayname":"Signal bridge bot"}' ]] || fail "bot profile is $profile"

    lab_log "smoke test passed"
}

main "$@"
