#!/usr/bin/env bash
# Remove a lab started by up.sh: its compose stack and volumes, the bridge container if any,
# the matrix-net network, and DIR itself.
#
# Usage: down.sh DIR
#
# DIR is deleted only if up.sh created it (it contains .lab-originals/), so a mistyped path
# can't remove anything else. Running it twice is harmless.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

remove_container() {
    local container=$1

    if docker container inspect "$container" >/dev/null 2>&1; then
        docker rm -f "$container" >/dev/null
        lab_log "removed container $container"
    fi
}

main() {
    if [[ $# -ne 1 ]]; then
        echo "usage: $0 DIR" >&2
        exit 2
    fi
    local dir=$1

    if [[ -e "$dir" && ! -d "$dir/$LAB_MARKER" ]]; then
        lab_die "$dir was not created by tests/lab/up.sh (no $LAB_MARKER inside): not touching it"
    fi

    # The bridge container joins matrix-net from outside the compose file, and compose can't
    # remove the network while it runs.
    remove_container "$LAB_BRIDGE_CONTAINER"

    if [[ -f "$dir/docker-compose.yml" ]]; then
        (cd "$dir" && lab_compose down --volumes --remove-orphans --timeout 10) >&2 || \
            lab_log "compose down failed in $dir; removing the containers by name"
    fi

    local container
    for container in "$LAB_SYNAPSE_CONTAINER" "$LAB_POSTGRES_CONTAINER"; do
        remove_container "$container"
    done

    if docker network inspect "$LAB_NETWORK" >/dev/null 2>&1; then
        docker network rm "$LAB_NETWORK" >/dev/null
        lab_log "removed network $LAB_NETWORK"
    fi

    if [[ -d "$dir" ]]; then
        rm -rf "$dir"
        lab_log "removed $dir"
    fi
}

main "$@"
