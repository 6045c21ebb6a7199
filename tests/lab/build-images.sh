#!/usr/bin/env bash
# Build the lab's Docker images from Debian packages and PyPI, with no container registry.
#
# Images (each tagged by a hash of its inputs, plus a moving `:lab` tag that up.sh uses):
#   rb6-lab-base      debootstrap --variant=minbase bookworm, loaded with `docker import`
#   rb6-lab-postgres  PostgreSQL 15 from Debian, entrypoint in postgres/docker-entrypoint.sh
#   rb6-lab-synapse   matrix-synapse from PyPI in a venv, entrypoint in synapse/entrypoint.sh
#   rb6-lab-bridge    the mautrix-signal test stand-in in bridge/, also tagged
#                     dock.mau.dev/mautrix/signal:v0.2603.0 because the real image can't be pulled here
#
# An image whose hash tag already exists is reused, so a second run takes seconds.
# Environment: DEBIAN_MIRROR (default http://deb.debian.org/debian), SYNAPSE_VERSION (default 1.147.1).
set -euo pipefail

LAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SYNAPSE_VERSION="${SYNAPSE_VERSION:-1.147.1}"
HOST_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
BRIDGE_IMAGE=dock.mau.dev/mautrix/signal:v0.2603.0

# The legacy builder resolves `FROM rb6-lab-base:...` from local images and never contacts a registry.
export DOCKER_BUILDKIT=0

log() {
    echo "build-images: $*" >&2
}

# Print a short hash of the named functions' source, the given files and any extra strings.
inputs_hash() {
    local functions=$1
    shift

    {
        local fn
        for fn in $functions; do
            declare -f "$fn"
        done

        local item
        for item in "$@"; do
            if [[ -f "$item" ]]; then
                echo "file ${item#"$LAB_DIR"/}"
                cat "$item"
            else
                echo "value $item"
            fi
        done
    } | sha256sum | cut -c1-16
}

image_exists() {
    docker image inspect "$1" >/dev/null 2>&1
}

install_host_tools() {
    if command -v debootstrap >/dev/null; then
        return
    fi

    log "installing debootstrap with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
}

# Create the base root filesystem with debootstrap and import it as image $1.
build_base() {
    local tag=$1
    local rootfs
    rootfs="$(mktemp -d /var/tmp/rb6-lab-rootfs.XXXXXX)"

    debootstrap --variant=minbase bookworm "$rootfs" "$DEBIAN_MIRROR" >"$rootfs.log" 2>&1 || {
        tail -n 30 "$rootfs.log" >&2
        log "debootstrap failed; full log in $rootfs.log"
        return 1
    }
    rm -f "$rootfs.log"

    cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $DEBIAN_MIRROR bookworm main
deb $DEBIAN_MIRROR bookworm-updates main
deb ${DEBIAN_MIRROR%/debian}/debian-security bookworm-security main
EOF

    # Keep package maintainer scripts from starting services during image builds.
    printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
    chmod 0755 "$rootfs/usr/sbin/policy-rc.d"

    mkdir -p "$rootfs/etc/ssl/certs"
    cp "$HOST_CA_BUNDLE" "$rootfs/etc/ssl/certs/ca-certificates.crt"

    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb

    tar --numeric-owner -C "$rootfs" -c . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["/bin/bash"]' \
        - "$tag" >/dev/null
    rm -rf "$rootfs"
}

# Build image $1 from the Dockerfile $2 with build context $3 and base image $4; further
# arguments go to `docker build`.
docker_build() {
    local tag=$1 dockerfile=$2 context=$3 base=$4
    shift 4
    local build_log
    build_log="$(mktemp /var/tmp/rb6-lab-build.XXXXXX.log)"

    if ! docker build --quiet --build-arg "BASE=$base" "$@" -f "$dockerfile" -t "$tag" "$context" >"$build_log" 2>&1; then
        tail -n 40 "$build_log" >&2
        log "docker build of $tag failed; full log in $build_log"
        return 1
    fi
    rm -f "$build_log"
}

# Copy the host CA bundle into a build context so that pip inside the image trusts this network.
stage_context() {
    local source_dir=$1 context
    context="$(mktemp -d /var/tmp/rb6-lab-context.XXXXXX)"
    cp -a "$source_dir"/. "$context"/
    cp "$HOST_CA_BUNDLE" "$context/ca-certificates.crt"
    echo "$context"
}

# Build or reuse image $1 ("name") whose inputs are the function list $2 and files $3...
# Prints the hash tag.
ensure_image() {
    local name=$1 functions=$2
    shift 2

    local hash tag
    hash="$(inputs_hash "$functions" "$@")"
    tag="$name:$hash"

    if image_exists "$tag"; then
        log "reusing $tag"
    else
        log "building $tag"
        local started=$SECONDS
        "build_${name#rb6-lab-}" "$tag"
        log "built $tag in $((SECONDS - started)) s"
    fi

    docker tag "$tag" "$name:lab"
    remove_stale_tags "$name" "$tag"
    echo "$tag"
}

# Untag earlier builds of image $1 so that rebuilt images don't pile up; $2 is the current tag.
remove_stale_tags() {
    local name=$1 current=$2 old

    for old in $(docker images --format '{{.Repository}}:{{.Tag}}' "$name"); do
        if [[ "$old" != "$current" && "$old" != "$name:lab" ]]; then
            docker rmi "$old" >/dev/null 2>&1 || log "could not remove stale image $old"
        fi
    done
}

build_postgres() {
    local tag=$1 context
    context="$(stage_context "$LAB_DIR/postgres")"
    docker_build "$tag" "$context/Dockerfile" "$context" "$BASE_TAG"
    rm -rf "$context"
}

build_synapse() {
    local tag=$1 context
    context="$(stage_context "$LAB_DIR/synapse")"
    docker_build "$tag" "$context/Dockerfile" "$context" "$BASE_TAG" \
        --build-arg "SYNAPSE_VERSION=$SYNAPSE_VERSION"
    rm -rf "$context"
}

build_bridge() {
    local tag=$1 context
    context="$(stage_context "$LAB_DIR/bridge")"
    docker_build "$tag" "$context/Dockerfile" "$context" "$BASE_TAG"
    rm -rf "$context"
}

main() {
    local started=$SECONDS
    install_host_tools

    BASE_TAG="$(ensure_image rb6-lab-base "build_base" "$DEBIAN_MIRROR" "$HOST_CA_BUNDLE")"

    ensure_image rb6-lab-postgres "build_postgres docker_build stage_context" "$BASE_TAG" \
        "$LAB_DIR/postgres/Dockerfile" "$LAB_DIR/postgres/docker-entrypoint.sh" >/dev/null

    ensure_image rb6-lab-synapse "build_synapse docker_build stage_context" "$BASE_TAG" "$SYNAPSE_VERSION" \
        "$LAB_DIR/synapse/Dockerfile" "$LAB_DIR/synapse/entrypoint.sh" >/dev/null

    local bridge_tag
    bridge_tag="$(ensure_image rb6-lab-bridge "build_bridge docker_build stage_context" "$BASE_TAG" \
        "$LAB_DIR/bridge/Dockerfile" "$LAB_DIR/bridge/docker-run.sh" \
        "$LAB_DIR/bridge/mautrix_signal_standin.py" "$LAB_DIR/bridge/default-config.yaml")"
    docker tag "$bridge_tag" "$BRIDGE_IMAGE"

    log "images ready in $((SECONDS - started)) s"
}

main "$@"
