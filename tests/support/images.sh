#!/usr/bin/env bash
# Builds the local test image rb6-test/busybox:<hash> FROM scratch with Debian's static busybox
# and prints its reference on stdout. The tag is a hash of the busybox binary and the Dockerfile,
# so an image that is already present is reused. No registry is contacted.
set -euo pipefail

busybox=/bin/busybox
# Debian's busybox package is linked dynamically and would not run in a FROM scratch image.
if ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed'; then
    echo "images.sh: installing busybox-static from apt" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >&2
fi

dockerfile='FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "mkdir", "-p", "/usr/bin", "/sbin", "/usr/sbin", "/etc", "/data", "/var/run"]
RUN ["/bin/busybox", "--install", "-s"]
RUN ["/bin/busybox", "mkdir", "-m", "1777", "/tmp"]
'

hash=$( { sha256sum "$busybox" | cut -d' ' -f1; printf '%s' "$dockerfile"; } | sha256sum | cut -c1-12)
image="rb6-test/busybox:$hash"

if ! docker image inspect "$image" >/dev/null 2>&1; then
    context=$(mktemp -d)
    trap 'rm -rf "$context"' EXIT
    cp "$busybox" "$context/busybox"
    printf '%s' "$dockerfile" > "$context/Dockerfile"
    DOCKER_BUILDKIT=0 docker build -q -t "$image" "$context" >&2
fi

echo "$image"
