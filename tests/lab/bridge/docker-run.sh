#!/bin/sh
# Entrypoint of the mautrix-signal TEST STAND-IN image, with the steps of the real image's
# docker-run.sh: write a default config and stop, else write a registration and stop, else
# hand /data to $UID:$GID (default 1337) and run the bridge as that user.
# POSIX sh (dash), not bash, because bash replaces the UID environment variable with its own uid.
set -eu

UID="${UID:-1337}"
if [ -z "${GID:-}" ]; then
    GID="$UID"
fi

BINARY_NAME=/usr/bin/mautrix-signal

if [ ! -f /data/config.yaml ]; then
    $BINARY_NAME -c /data/config.yaml -e
    echo "Didn't find a config file."
    echo "Copied default config file to /data/config.yaml"
    echo "Modify that config file to your liking."
    echo "Start the container again after that to generate the registration file."
    exit
fi

if [ ! -f /data/registration.yaml ]; then
    $BINARY_NAME -g -c /data/config.yaml -r /data/registration.yaml || exit $?
    echo "Didn't find a registration file."
    echo "Generated one for you."
    echo "See https://docs.mau.fi/bridges/general/registering-appservices.html on how to use it."
    exit
fi

cd /data
chown -R "$UID:$GID" /data
exec setpriv --reuid="$UID" --regid="$GID" --clear-groups "$BINARY_NAME"
