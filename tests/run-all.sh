#!/usr/bin/env bash
# Runs every test of rb6: installs and starts what the tests need (PostgreSQL from Debian
# packages, local test images for the Docker Engine), runs the Rust test suite, then the
# end-to-end lab test of runbooks/mautrix-signal.rb6 against real PostgreSQL and Synapse.
# Needs: root (for apt-get), a running Docker Engine, the Rust toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== setting up test services"
bash .ci/setup-services.sh

echo "== cargo test"
cargo test --all-targets --no-fail-fast 2>&1 | tee /tmp/rb6-cargo-test.log
status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ]; then
    echo "cargo test failed with exit code $status"
    exit "$status"
fi

echo "== end-to-end lab test"
bash tests/lab/e2e.sh
