#!/usr/bin/env bash
# Starts PostgreSQL 15 inside container rb6-test-pg on the user-defined network rb6-test-net, for
# tests that connect to a database by container name. There is no registry to pull a postgres
# image from, so the container runs the local busybox test image with the host's /usr, /lib,
# /lib64, /etc/passwd and /etc/group bind-mounted read-only. It runs the host's PostgreSQL 15
# binaries as the postgres user (superuser rb6, scram-sha-256 password auth, port 5432).
# Reuses a running container. Prints the container name on stdout.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
network=rb6-test-net
container=rb6-test-pg
password=rb6-test-password
bindir=/usr/lib/postgresql/15/bin

if [ ! -x "$bindir/postgres" ]; then
    echo "start-pg-container.sh: installing postgresql-15 from apt" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >&2
fi
image=$("$here/images.sh")

if ! docker network inspect "$network" >/dev/null 2>&1; then
    docker network create "$network" >/dev/null
fi

container_ip() {
    docker inspect -f "{{(index .NetworkSettings.Networks \"$network\").IPAddress}}" "$container" 2>/dev/null
}

running=$(docker inspect -f '{{.State.Running}}' "$container" 2>/dev/null || true)
if [ "$running" != true ]; then
    docker rm -f "$container" >/dev/null 2>&1 || true
    mounts=()
    for dir in /usr /lib /lib64 /etc/passwd /etc/group; do
        if [ -e "$dir" ]; then mounts+=(-v "$dir:$dir:ro"); fi
    done
    script="set -e
printf '%s\n' '$password' > /tmp/pwfile
$bindir/initdb -D /tmp/pgdata -U rb6 --pwfile=/tmp/pwfile --auth=scram-sha-256 --encoding=UTF8 --no-locale >/tmp/initdb.log
rm /tmp/pwfile
echo 'host all all 0.0.0.0/0 scram-sha-256' >> /tmp/pgdata/pg_hba.conf
exec $bindir/postgres -D /tmp/pgdata -c listen_addresses='*' -c unix_socket_directories=/tmp"
    docker run -d --name "$container" --network "$network" \
        --user "$(id -u postgres):$(id -g postgres)" "${mounts[@]}" \
        "$image" sh -c "$script" >/dev/null
fi

for _ in $(seq 1 60); do
    ip=$(container_ip || true)
    if [ -n "$ip" ] && "$bindir/pg_isready" -q -h "$ip" -p 5432; then
        echo "$container"
        exit 0
    fi
    sleep 0.5
done

echo "start-pg-container.sh: PostgreSQL in container $container did not become ready; its log:" >&2
docker logs "$container" >&2 || true
exit 1
