#!/usr/bin/env bash
# End-to-end test of runbooks/mautrix-signal.rb6 against fresh labs, with the real rb6 binary.
#
# Usage: tests/lab/e2e.sh            (as root, with Docker and a compose tool; see README.md)
#
# Phases, each on a fresh lab where it says so:
#   1. plan on a fresh lab: exit code 2, every step pending
#   2. apply, then check every effect without rb6 (psql, curl, docker inspect, file compares)
#   3. a second apply changes nothing; plan --detailed-exitcode exits 0 with "No changes"
#   6. undo on the same lab: everything removed, edited files byte-identical, Synapse restarted last
#   4. fresh lab: kill -9 rb6 at several steps, resume, and check the end state as in phase 2
#   5. fresh lab: a corrupted as_token in Synapse's copy of the registration fails the gate; the
#      bridge container is never created and the report holds the HTTP exchange and Synapse's log
#
# Environment: RB6 (path of the rb6 binary; default: built with cargo), E2E_DIR (default
# /tmp/rb6-e2e), E2E_PHASES (default "plan apply idempotent undo redeploy kills gate"). Prints PASS/FAIL per check and ends with "N passed, M failed".
set -uo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REPO="$(cd "$LAB_DIR/../.." && pwd)"
RUNBOOK="$REPO/runbooks/mautrix-signal.rb6"
E2E_DIR="${E2E_DIR:-/tmp/rb6-e2e}"
# Phases to run, in order; apply, idempotent and undo continue the lab that plan starts.
E2E_PHASES="${E2E_PHASES:-plan apply idempotent undo redeploy kills gate}"
LAB="$E2E_DIR/lab"
STATE="$E2E_DIR/state"
LOGS="$E2E_DIR/logs"
BRIDGE_IMAGE=dock.mau.dev/mautrix/signal:v0.2603.0
DEFAULT_CONFIG="$LAB_DIR/bridge/default-config.yaml"

PASSED=0
FAILED=0
PHASE_STARTED=$SECONDS
TIMINGS=()

pass() {
    PASSED=$((PASSED + 1))
    echo "PASS $*"
}

fail() {
    FAILED=$((FAILED + 1))
    echo "FAIL $*"
}

# check "description" command...: PASS when the command exits 0.
check() {
    local description=$1
    shift
    if "$@" >>"$LOGS/checks.log" 2>&1; then
        pass "$description"
    else
        fail "$description"
    fi
}

phase() {
    end_phase
    CURRENT_PHASE=$1
    PHASE_STARTED=$SECONDS
    echo
    echo "=== phase $1"
}

end_phase() {
    if [[ -n "${CURRENT_PHASE:-}" ]]; then
        TIMINGS+=("phase $CURRENT_PHASE: $((SECONDS - PHASE_STARTED)) s")
    fi
}

build_rb6() {
    if [[ -n "${RB6:-}" ]]; then
        return
    fi
    (cd "$REPO" && cargo build --quiet --bin rb6) || lab_die "cargo build failed"
    local target="${CARGO_TARGET_DIR:-$REPO/target}"
    RB6="$target/debug/rb6"
}

# Run rb6 against the current lab: rb6_run SUBCOMMAND [ARGS...].
rb6_run() {
    local command=$1
    shift
    NO_COLOR=1 SYNAPSE_POSTGRES_PASSWORD="$(cat "$LAB/.lab-postgres-password")" "$RB6" "$command" "$RUNBOOK" \
        --state "$STATE" --var "compose_dir=$LAB" --var "backup_script=$LAB/scripts/pg_backup.sh" "$@"
}

# The same, in the background: rb6 replaces the subshell, so $! is rb6's own pid.
rb6_background() {
    local command=$1
    shift
    (
        export NO_COLOR=1 SYNAPSE_POSTGRES_PASSWORD
        SYNAPSE_POSTGRES_PASSWORD="$(cat "$LAB/.lab-postgres-password")"
        exec "$RB6" "$command" "$RUNBOOK" --state "$STATE" --var "compose_dir=$LAB" --var "backup_script=$LAB/scripts/pg_backup.sh" "$@"
    ) &
}

fresh_lab() {
    "$LAB_DIR/down.sh" "$LAB" >>"$LOGS/lab.log" 2>&1
    rm -rf "$STATE"
    docker image inspect "$BRIDGE_IMAGE" >/dev/null 2>&1 || docker tag rb6-lab-bridge:lab "$BRIDGE_IMAGE"
    "$LAB_DIR/up.sh" "$LAB" >>"$LOGS/lab.log" 2>&1 || lab_die "up.sh failed; see $LOGS/lab.log"
}

psql_synapse() {
    docker exec "$LAB_POSTGRES_CONTAINER" psql -U synapse -d "${2:-postgres}" -Atc "$1"
}

# ---------------------------------------------------------------------------------------------
# Independent checks of the applied end state.

check_database() {
    check "role mautrix_signal: LOGIN, NOSUPERUSER, NOCREATEDB, NOCREATEROLE" \
        test "$(psql_synapse "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = 'mautrix_signal'")" = "t|f|f|f"
    check "database mautrix_signal: owned by mautrix_signal, UTF8, collation and ctype C" \
        test "$(psql_synapse "SELECT r.rolname, pg_encoding_to_char(d.encoding), d.datcollate, d.datctype FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname = 'mautrix_signal'")" = "mautrix_signal|UTF8|C|C"
    check "role mautrix_signal is denied Synapse's tables (42501 on public.users)" \
        bash -c "docker exec $LAB_POSTGRES_CONTAINER psql -U synapse -d synapse -c 'SET ROLE mautrix_signal' -c 'SELECT 1 FROM public.users LIMIT 1' 2>&1 | grep -q 'permission denied for table users'"

    local uri password
    uri="$(python3 -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["database"]["uri"])' "$LAB/mautrix-signal/config.yaml")"
    password="$(python3 -c 'import sys, urllib.parse; print(urllib.parse.urlsplit(sys.argv[1]).password)' "$uri")"
    check "the database password in config.yaml is 64 alphanumeric characters" \
        bash -c "[[ '$password' =~ ^[A-Za-z0-9]{64}$ ]]"
    check "the role logs in over TCP with that password" \
        bash -c "docker exec -e PGPASSWORD='$password' $LAB_POSTGRES_CONTAINER psql -h 127.0.0.1 -U mautrix_signal -d mautrix_signal -Atc 'SELECT current_user' | grep -qx mautrix_signal"
}

check_backup() {
    local script="$LAB/scripts/pg_backup.sh" dir="$E2E_DIR/backup-check"
    rm -rf "$dir"
    mkdir -p "$dir"
    touch -d '20 days ago' "$dir/mautrix_signal_old.sql.gz" "$dir/mas_old.sql.gz" "$dir/synapse_old.sql.gz"

    check "pg_backup.sh runs" bash -c "BACKUP_DIR='$dir' '$script' >'$dir/output' 2>&1"
    check "pg_backup.sh reports no failed dump" bash -c "! grep -q WARNING '$dir/output'"
    local prefix
    for prefix in synapse mautrix_signal mas; do
        check "pg_backup.sh writes a valid, non-empty ${prefix} dump" \
            bash -c "f=\$(ls '$dir'/${prefix}_2*.sql.gz) && [ -s \"\$f\" ] && gzip -t \"\$f\" && gzip -dc \"\$f\" | grep -q 'PostgreSQL database dump'"
        check "pg_backup.sh's cleanup removes ${prefix} dumps older than 14 days" test ! -e "$dir/${prefix}_old.sql.gz"
    done
    check "the mautrix_signal dump comes right after the synapse dump in pg_backup.sh" \
        bash -c "grep -n -e 'Backup created: .*synapse_' -e 'BEGIN rb6 mautrix-signal dump' -e 'BEGIN rb6 mas dump' '$script' | cut -d: -f1 | sort -nc"
}

# Every line of the bridge's default config is still in config.yaml, except the lines of the
# settings the plan changes and the ones the bridge itself rewrites.
check_config_lines() {
    python3 - "$DEFAULT_CONFIG" "$LAB/mautrix-signal/config.yaml" <<'PY'
import difflib
import sys

allowed = {
    "    uri: postgres://user:password@host/database?sslmode=disable\n",
    "    address: http://example.localhost:8008\n",
    "    domain: example.com\n",
    "    address: http://localhost:29328\n",
    "    hostname: 127.0.0.1\n",
    "    allow: false\n", "    default: false\n", "    require: false\n", "    msc4190: false\n", "    self_sign: false\n",
    '        "example.com": user\n', '        "@admin:example.com": admin\n',
    "        example.com: as_token:foobar\n",
    '    as_token: "This value is generated when generating the registration"\n',
    '    hs_token: "This value is generated when generating the registration"\n',
    "    shared_secret: generate\n", "    signing_key: generate\n", "    pickle_key: generate\n",
}
original = open(sys.argv[1], encoding="utf-8").readlines()
current = open(sys.argv[2], encoding="utf-8").readlines()
changed = []
for tag, i1, i2, _, _ in difflib.SequenceMatcher(None, original, current, autojunk=False).get_opcodes():
    if tag in ("replace", "delete"):
        changed.extend(original[i1:i2])
unexpected = [line for line in changed if line not in allowed]
if unexpected:
    sys.exit("lines of the default config changed or lost: " + "".join(unexpected))
print(f"{len(original) - len(changed)} of {len(original)} default lines kept, {len(changed)} expected changes")
PY
}

# lines_kept ORIGINAL CURRENT: every line of ORIGINAL is in CURRENT, in the same order.
lines_kept() {
    python3 - "$1" "$2" <<'PY'
import difflib, sys
original = open(sys.argv[1], "rb").read().splitlines(keepends=True)
current = open(sys.argv[2], "rb").read().splitlines(keepends=True)
lost = [tag for tag, *_ in difflib.SequenceMatcher(None, original, current, autojunk=False).get_opcodes() if tag in ("replace", "delete")]
sys.exit(1 if lost else 0)
PY
}

check_config() {
    local config="$LAB/mautrix-signal/config.yaml"
    python3 - "$config" "$LAB/mautrix-signal/doublepuppet.yaml" >>"$LOGS/checks.log" 2>&1 <<'PY'
import sys
import yaml

config = yaml.safe_load(open(sys.argv[1]))
doublepuppet = yaml.safe_load(open(sys.argv[2]))
expected = {
    ("database", "type"): "postgres",
    ("homeserver", "address"): "http://matrix-synapse:8008",
    ("homeserver", "domain"): "echo6.co",
    ("appservice", "address"): "http://mautrix-signal:29328",
    ("appservice", "hostname"): "0.0.0.0",
    ("appservice", "port"): 29328,
    ("encryption", "allow"): True,
    ("encryption", "default"): True,
    ("encryption", "require"): True,
    ("encryption", "appservice"): False,
    ("encryption", "msc4190"): True,
    ("encryption", "allow_key_sharing"): True,
    ("encryption", "self_sign"): True,
    ("bridge", "permissions"): {"*": "relay", "echo6.co": "user", "@matt:echo6.co": "admin"},
    ("double_puppet", "secrets"): {"echo6.co": "as_token:" + doublepuppet["as_token"]},
}
failures = []
for path, value in expected.items():
    node = config
    for key in path:
        node = node[key]
    status = "PASS" if node == value else "FAIL"
    if node != value:
        failures.append(".".join(path))
    print(f"{status} config.yaml {'.'.join(path)} = {value!r}")
uri = config["database"]["uri"]
if not (uri.startswith("postgres://mautrix_signal:") and uri.endswith("@matrix-postgres:5432/mautrix_signal?sslmode=disable")):
    failures.append("database.uri")
# The bridge replaced `generate` with a key on its first start (the plan's `pickle_key: generate`).
if config["encryption"]["pickle_key"] in ("generate", "", None):
    failures.append("encryption.pickle_key")
sys.exit(1 if failures else 0)
PY
    if [[ $? -eq 0 ]]; then pass "config.yaml has every setting of plan sections 3, 4, 5a, 7 and 8"; else fail "config.yaml has every setting of plan sections 3, 4, 5a, 7 and 8"; fi
    check "config.yaml keeps every other line of the bridge's default config byte for byte" check_config_lines

    check "doublepuppet.yaml: id, null url, _doublepuppet, escaped domain regex, 64-char tokens" python3 - "$LAB/mautrix-signal/doublepuppet.yaml" <<'PY'
import re, sys, yaml
data = yaml.safe_load(open(sys.argv[1]))
assert data["id"] == "doublepuppet", data["id"]
assert data["url"] is None, data["url"]
assert data["sender_localpart"] == "_doublepuppet", data["sender_localpart"]
assert data["rate_limited"] is False
assert data["namespaces"]["users"] == [{"regex": r"@.*:echo6\.co", "exclusive": False}]
assert re.fullmatch(r"[A-Za-z0-9]{64}", data["as_token"]), "as_token is not 64 alphanumeric characters"
assert re.fullmatch(r"[A-Za-z0-9]{64}", data["hs_token"]), "hs_token is not 64 alphanumeric characters"
PY
}

check_synapse() {
    local volume="$LAB/synapse"
    check "registration.yaml in Synapse's volume equals the bridge's" cmp "$volume/registration.yaml" "$LAB/mautrix-signal/registration.yaml"
    check "doublepuppet.yaml in Synapse's volume equals the bridge's copy" cmp "$volume/doublepuppet.yaml" "$LAB/mautrix-signal/doublepuppet.yaml"
    check "the bridge registration carries io.element.msc4190: true" grep -qx 'io.element.msc4190: true' "$volume/registration.yaml"
    check "homeserver.yaml sets both experimental features and lists both registrations" python3 - "$volume/homeserver.yaml" <<'PY'
import sys, yaml
data = yaml.safe_load(open(sys.argv[1]))
assert data["experimental_features"] == {"msc3202_transaction_extensions": True, "msc2409_to_device_messages_enabled": True}
assert data["app_service_config_files"] == ["/data/registration.yaml", "/data/doublepuppet.yaml"]
PY
    check "homeserver.yaml still starts with the original file, comments included" \
        python3 -c 'import sys; o = open(sys.argv[1], "rb").read(); n = open(sys.argv[2], "rb").read(); sys.exit(not n.startswith(o))' \
        "$LAB/.lab-originals/synapse/homeserver.yaml" "$volume/homeserver.yaml"

    local as_token sender
    as_token="$(python3 -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["as_token"])' "$volume/registration.yaml")"
    sender="$(python3 -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["sender_localpart"])' "$volume/registration.yaml")"
    check "whoami with the bridge's as_token answers 200 as @$sender:echo6.co" \
        bash -c "curl -fsS -H 'Authorization: Bearer $as_token' $LAB_SYNAPSE_URL/_matrix/client/v3/account/whoami | jq -e '.user_id == \"@$sender:echo6.co\"'"
}

check_bridge() {
    local inspect
    inspect="$(docker inspect mautrix-signal 2>/dev/null)"
    check "the bridge container runs" bash -c "jq -e '.[0].State.Running' <<<'$inspect'"
    check "the bridge container runs the pinned image" bash -c "jq -e '.[0].Config.Image == \"$BRIDGE_IMAGE\"' <<<'$inspect'"
    check "the bridge container is on matrix-net only" bash -c "jq -e '.[0].NetworkSettings.Networks | keys == [\"matrix-net\"]' <<<'$inspect'"
    check "the bridge container publishes no port" bash -c "jq -e '(.[0].HostConfig.PortBindings // {}) == {} and ([.[0].NetworkSettings.Ports // {} | .[] | select(. != null)] | length) == 0' <<<'$inspect'"
    check "the bridge container restarts unless stopped" bash -c "jq -e '.[0].HostConfig.RestartPolicy.Name == \"unless-stopped\"' <<<'$inspect'"
    check "the bridge container mounts the data directory at /data" bash -c "jq -e '[.[0].Mounts[] | select(.Destination == \"/data\") | .Source] == [\"$LAB/mautrix-signal\"]' <<<'$inspect'"
    check "docker-compose.yml has the plan's service block, without ports" python3 - "$LAB/docker-compose.yml" <<'PY'
import sys, yaml
service = yaml.safe_load(open(sys.argv[1]))["services"]["mautrix-signal"]
assert service == {
    "image": "dock.mau.dev/mautrix/signal:v0.2603.0",
    "container_name": "mautrix-signal",
    "restart": "unless-stopped",
    "depends_on": {"postgres": {"condition": "service_healthy"}},
    "volumes": ["./mautrix-signal:/data"],
    "networks": ["matrix-net"],
}, service
PY
    check "docker-compose.yml keeps every original line, in order" lines_kept "$LAB/.lab-originals/docker-compose.yml" "$LAB/docker-compose.yml"
    check "the bot @signalbot:echo6.co exists on Synapse (profile answers 200)" \
        curl -fsS -o /dev/null "$LAB_SYNAPSE_URL/_matrix/client/v3/profile/@signalbot:echo6.co"
}

check_end_state() {
    check_database
    check_backup
    check_config
    check_synapse
    check_bridge
}

# ---------------------------------------------------------------------------------------------
# Phases.

phase_plan() {
    phase "1: plan on a fresh lab"
    fresh_lab
    rb6_run plan --detailed-exitcode >"$LOGS/plan.txt" 2>&1
    local code=$?
    check "plan --detailed-exitcode exits 2 on a fresh lab (observed $code)" test "$code" -eq 2
    check "the plan lists all 30 steps as pending (24 steps, 4 gates, 2 manual)" grep -q 'Plan: 24 to apply, 0 to change, 4 gates, 2 manual.' "$LOGS/plan.txt"
}

phase_apply() {
    phase "2: apply and check every effect"
    rb6_run apply --auto-approve --confirm-all >"$LOGS/apply.txt" 2>&1
    check "apply --auto-approve --confirm-all exits 0" test $? -eq 0
    check "the stop-and-check gate appservice_auth passed" grep -q 'gate "appservice_auth" passed' "$LOGS/apply.txt"
    check "no secret value in the apply output" bash -c "! grep -Eq '[A-Za-z0-9]{64}' '$LOGS/apply.txt'"
    check_end_state
}

phase_idempotent() {
    phase "3: a second apply changes nothing"
    rb6_run apply --auto-approve --confirm-all >"$LOGS/apply-again.txt" 2>&1
    check "second apply exits 0" test $? -eq 0
    check "second apply reports no changes" grep -q 'No changes' "$LOGS/apply-again.txt"
    rb6_run plan --detailed-exitcode >"$LOGS/plan-again.txt" 2>&1
    local code=$?
    check "plan --detailed-exitcode exits 0 after apply (observed $code)" test "$code" -eq 0
    check "plan says No changes" grep -q 'No changes' "$LOGS/plan-again.txt"
}

phase_undo() {
    phase "6: undo"
    rb6_run undo --auto-approve >"$LOGS/undo.txt" 2>&1
    check "undo --auto-approve exits 0" test $? -eq 0
    check "the bridge container is gone" bash -c "! docker container inspect mautrix-signal"
    check "the bridge image is gone" bash -c "! docker image inspect $BRIDGE_IMAGE"
    check "the bridge data directory is gone" test ! -e "$LAB/mautrix-signal"
    check "both registrations are gone from Synapse's volume" test ! -e "$LAB/synapse/registration.yaml" -a ! -e "$LAB/synapse/doublepuppet.yaml"
    check "database mautrix_signal is gone" test -z "$(psql_synapse "SELECT 1 FROM pg_database WHERE datname = 'mautrix_signal'")"
    check "role mautrix_signal is gone" test -z "$(psql_synapse "SELECT 1 FROM pg_roles WHERE rolname = 'mautrix_signal'")"
    local file
    for file in synapse/homeserver.yaml docker-compose.yml scripts/pg_backup.sh; do
        check "$file is byte-identical to the original" cmp "$LAB/$file" "$LAB/.lab-originals/$file"
    done
    check "Synapse was restarted after the registrations were removed" bash -c "
        line_of() { grep -n \"\$1\" '$LOGS/undo.txt' | head -n 1 | cut -d: -f1; }
        r=\$(line_of 'step \"restart_synapse\" undone'); a=\$(line_of 'step \"synapse_appservices\" undone')
        i=\$(line_of 'step \"install_registration\" undone'); d=\$(line_of 'step \"install_doublepuppet\" undone')
        e=\$(line_of 'step \"synapse_experimental\" undone')
        [ -n \"\$r\" ] && [ \"\$r\" -gt \"\$a\" ] && [ \"\$r\" -gt \"\$i\" ] && [ \"\$r\" -gt \"\$d\" ] && [ \"\$r\" -gt \"\$e\" ]"
    check "Synapse is healthy after the undo" lab_wait_for_synapse 120
    check "Synapse no longer accepts an appservice token (no registrations loaded)" \
        bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer nothing' $LAB_SYNAPSE_URL/_matrix/client/v3/account/whoami)\" = 401 ]"
    docker tag rb6-lab-bridge:lab "$BRIDGE_IMAGE"
}

phase_redeploy() {
    phase "7: redeploy after the rollback"
    rb6_run apply --auto-approve --confirm-all >"$LOGS/redeploy.txt" 2>&1
    check "apply after the undo exits 0" test $? -eq 0
    check "the redeploy regenerates the bridge config" grep -q 'step "generate_config" applied' "$LOGS/redeploy.txt"
    check "the stop-and-check gate passed again" grep -q 'gate "appservice_auth" passed' "$LOGS/redeploy.txt"
    check_end_state
}

# Wait until the journal shows RECORD for STEP, then kill -9 the rb6 process PID.
# Records of earlier runs stay in the journal until a run completes, so only a new one counts.
kill_at() {
    local pid=$1 record=$2 step=$3
    local deadline=$((SECONDS + 300))
    local pattern="\"record\":\"$record\",\"step\":\"$step\""
    local before
    before=$(grep -ao "$pattern" "$STATE/journal" 2>/dev/null | wc -l)
    while kill -0 "$pid" 2>/dev/null; do
        if (($(grep -ao "$pattern" "$STATE/journal" 2>/dev/null | wc -l) > before)); then
            kill -9 "$pid"
            wait "$pid" 2>/dev/null
            echo "killed rb6 at $record $step"
            return 0
        fi
        ((SECONDS < deadline)) || break
        sleep 0.01
    done
    wait "$pid" 2>/dev/null
    echo "rb6 ended before $record $step"
    return 1
}

phase_kills() {
    phase "4: kill -9 and resume"
    fresh_lab
    local points=(
        "started db_database"
        "started generate_config"
        "applied config_network"
        "started restart_synapse"
        "started bridge_up"
    )
    local point run=0
    for point in "${points[@]}"; do
        run=$((run + 1))
        rb6_background apply --auto-approve --confirm-all --retry-interrupted >"$LOGS/kill-$run.txt" 2>&1
        local pid=$!
        # shellcheck disable=SC2086
        check "rb6 killed with -9 at: $point" kill_at "$pid" $point
        echo "  lab state after the kill at $point: $(docker ps --format '{{.Names}}' | tr '\n' ' ')" >>"$LOGS/checks.log"
    done
    rb6_run apply --auto-approve --confirm-all --retry-interrupted >"$LOGS/kill-resume.txt" 2>&1
    check "the resumed apply completes" test $? -eq 0
    rb6_run plan --detailed-exitcode >"$LOGS/kill-plan.txt" 2>&1
    check "plan shows No changes after the resumed apply" test $? -eq 0
    check_end_state
}

phase_failing_gate() {
    phase "5: failing stop-and-check gate"
    fresh_lab
    rb6_background apply --auto-approve --confirm-all >"$LOGS/gate-1.txt" 2>&1
    local pid=$!
    check "rb6 killed after the registration was copied into Synapse's volume" kill_at "$pid" applied install_registration
    sed -i 's/^as_token: .*/as_token: corrupted-token-synapse-does-not-share-with-the-bridge/' "$LAB/synapse/registration.yaml"

    rb6_run apply --auto-approve --confirm-all --retry-interrupted >"$LOGS/gate-2.txt" 2>&1
    check "apply fails when the gate fails" test $? -ne 0
    check "the gate appservice_auth is what failed" grep -q 'gate "appservice_auth" failed' "$LOGS/gate-2.txt"
    check "the bridge container was never created" bash -c "! docker container inspect mautrix-signal"
    check "bridge_up never started" bash -c "! grep -aq '\"step\":\"bridge_up\"' '$STATE/journal' '$STATE/snapshot.json'"
    local report
    report="$(ls "$STATE"/reports/appservice_auth-* 2>/dev/null | head -n 1)"
    check "a gate report file was written" test -n "$report"
    check "the report holds the HTTP request" grep -q 'GET /_matrix/client/v3/account/whoami' "$report"
    check "the report holds Synapse's 401 M_UNKNOWN_TOKEN answer" bash -c "grep -q '401' '$report' && grep -q 'M_UNKNOWN_TOKEN' '$report'"
    check "the report holds the last 50 log lines of matrix-synapse" grep -q 'last 50 log lines of container matrix-synapse' "$report"
    check "the report has no secret value" bash -c "! grep -Eq '[A-Za-z0-9]{64}' '$report'"
    cp "$report" "$LOGS/" 2>/dev/null
}

main() {
    [[ $# -eq 0 ]] || { echo "usage: $0" >&2; exit 2; }
    local started=$SECONDS
    rm -rf "$E2E_DIR"
    mkdir -p "$LOGS"
    build_rb6
    phase "0: build the lab images"
    "$LAB_DIR/build-images.sh" >>"$LOGS/lab.log" 2>&1 || lab_die "build-images.sh failed; see $LOGS/lab.log"
    docker tag rb6-lab-bridge:lab "$BRIDGE_IMAGE"

    local name
    for name in $E2E_PHASES; do
        case "$name" in
            plan) phase_plan ;;
            apply) phase_apply ;;
            idempotent) phase_idempotent ;;
            undo) phase_undo ;;
            redeploy) phase_redeploy ;;
            kills) phase_kills ;;
            gate) phase_failing_gate ;;
            *) lab_die "unknown phase $name in E2E_PHASES" ;;
        esac
    done
    end_phase

    "$LAB_DIR/down.sh" "$LAB" >/dev/null 2>&1
    docker image inspect "$BRIDGE_IMAGE" >/dev/null 2>&1 || docker tag rb6-lab-bridge:lab "$BRIDGE_IMAGE"
    echo
    printf '%s\n' "${TIMINGS[@]}"
    echo "total: $((SECONDS - started)) s; logs in $LOGS"
    echo "$PASSED passed, $FAILED failed"
    [[ $FAILED -eq 0 ]]
}

main "$@"
