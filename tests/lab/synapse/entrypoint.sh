#!/bin/bash
# Entrypoint of the lab's Synapse image.
#
#   (no arguments)  run Synapse with /data/homeserver.yaml
#   generate        write /data/homeserver.yaml, the log config and the signing key with Synapse's
#                   own --generate-config, for server name $SYNAPSE_SERVER_NAME and
#                   report_stats $SYNAPSE_REPORT_STATS (yes or no, default no)
#   anything else   run that command
set -euo pipefail

CONFIG=/data/homeserver.yaml

case "${1:-run}" in
    run)
        exec python -m synapse.app.homeserver --config-path "$CONFIG"
        ;;
    generate)
        if [[ -z "${SYNAPSE_SERVER_NAME:-}" ]]; then
            echo "synapse-entrypoint: SYNAPSE_SERVER_NAME is not set: set it to the server name, e.g. example.org" >&2
            exit 1
        fi
        exec python -m synapse.app.homeserver \
            --server-name "$SYNAPSE_SERVER_NAME" \
            --report-stats "${SYNAPSE_REPORT_STATS:-no}" \
            --config-path "$CONFIG" \
            --data-directory /data \
            --generate-config
        ;;
    *)
        exec "$@"
        ;;
esac
