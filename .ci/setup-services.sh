#!/usr/bin/env bash
# Prepares a fresh Debian machine for the integration tests: installs the packages they need,
# starts the host PostgreSQL server of tests/support/start-postgres.sh (127.0.0.1:54329) and
# builds the local test images. The Docker Engine must already be running; this script checks
# that `docker info` works and exits 1 with what to do otherwise.
#
# Run as root from any directory. It is idempotent: installed packages, a running server and
# existing images are reused, so a second run takes a few seconds.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
support="$repo/tests/support"

log() {
    echo "setup-services: $*" >&2
}

fail() {
    echo "setup-services: ERROR: $*" >&2
    exit 1
}

if [ "$(id -u)" != 0 ]; then
    fail "run this script as root: it installs packages with apt-get and starts PostgreSQL as the postgres user"
fi

# The test scripts run PostgreSQL 15 from /usr/lib/postgresql/15/bin, which Debian 12 ships.
# On a release without postgresql-15, the distribution's server is installed and
# tests/support/start-postgres.sh names the missing binaries below.
packages=(busybox-static debootstrap curl gzip ca-certificates)
missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'ok installed'; then
        missing+=("$package")
    fi
done
if [ ! -x /usr/lib/postgresql/15/bin/postgres ]; then
    missing+=(postgresql-15)
fi
# The compose tests need either the `docker compose` plugin or the standalone docker-compose.
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null; then
    missing+=(docker-compose)
fi

if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq || fail "apt-get update failed; check the machine's apt sources and network"
    if [[ " ${missing[*]} " == *" postgresql-15 "* ]] && ! apt-cache show postgresql-15 >/dev/null 2>&1; then
        log "postgresql-15 is not in this release's archive; installing the distribution's postgresql"
        missing=("${missing[@]/postgresql-15/postgresql}")
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
        fail "apt-get install ${missing[*]} failed (its errors are above)"
else
    log "all packages are installed"
fi

if ! command -v docker >/dev/null; then
    fail "the docker CLI is missing: this machine should come with the Docker Engine (Debian's docker.io) installed and started"
fi
if ! docker info >/dev/null 2>&1; then
    docker info 2>&1 | sed 's/^/    /' >&2 || true
    fail "the Docker Engine does not answer 'docker info'. Start it (systemctl start docker, or dockerd &) and run this script again"
fi
log "Docker Engine $(docker version --format '{{.Server.Version}}') is running"

url=$("$support/start-postgres.sh") || fail "tests/support/start-postgres.sh could not start PostgreSQL on 127.0.0.1:54329"
log "PostgreSQL accepts connections at ${url/rb6-test-password/<hidden>}"

image=$("$support/images.sh") || fail "tests/support/images.sh could not build the busybox test image"
log "test image $image is present"

log "ready: run cargo test"
