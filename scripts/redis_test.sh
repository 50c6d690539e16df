#!/usr/bin/env bash
# Rooms across processes through a real Redis, loopback only, bounded in time: installs
# redis-server (Debian package) when missing, then runs tests/redis.rs, where every test starts
# its own redis-server on a free 127.0.0.1 port with persistence off and stops it by its PID;
# the instances are this test binary run again as child processes. Also installs nginx when
# missing, for the test that puts it in front of two chat instances.
# Usage: scripts/redis_test.sh [extra arguments for the test binary, e.g. a test name]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/apt.sh
source scripts/apt.sh

REDIS_SERVER=/usr/bin/redis-server

if [ ! -x "$REDIS_SERVER" ]; then
    echo "== installing redis-server"
    apt_install redis-server
    # The package may start a system Redis on port 6379 (where policy-rc.d allows it). The
    # tests use their own servers and ports; leave nothing of the package's running.
    $sudo service redis-server stop >/dev/null 2>&1 || true
fi
echo "== $REDIS_SERVER ($("$REDIS_SERVER" --version | head -n 1))"
# One test puts nginx in front of two chat instances.
if [ ! -x /usr/sbin/nginx ]; then
    echo "== installing nginx"
    apt_install nginx
    $sudo service nginx stop >/dev/null 2>&1 || true
fi

# The chat example runs as two instances on one Redis in one of the tests.
timeout 600 cargo build --all-features --example chat
# One test at a time: each starts child processes and a Redis of its own, and the 2-core
# machine is shared. All features, as CI's main test run builds them (no extra build).
timeout 600 cargo test --all-features --test redis -- --ignored --test-threads=1 "$@"
