#!/usr/bin/env bash
# The client against a real SOCKS5 proxy, loopback only, bounded in time: installs microsocks
# (Debian package) when missing, then runs tests/socks.rs with its ignored tests, where each
# microsocks test starts its own microsocks on a free 127.0.0.1 port (with and without a user
# name and password). The other tests there use a SOCKS5 server written in the test.
# Usage: scripts/socks_test.sh [extra arguments for the test binary, e.g. a test name]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/apt.sh
source scripts/apt.sh

MICROSOCKS=/usr/bin/microsocks

if [ ! -x "$MICROSOCKS" ]; then
    echo "== installing microsocks"
    apt_install microsocks
    # The package ships no service that starts on install; nothing to stop.
fi
echo "== $MICROSOCKS ($(dpkg-query -W -f '${Version}' microsocks 2>/dev/null || echo unknown version))"

timeout 600 cargo test --all-features --test socks -- --include-ignored "$@"
