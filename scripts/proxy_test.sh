#!/usr/bin/env bash
# The client against a real HTTP CONNECT proxy, loopback only, bounded in time:
# installs tinyproxy and stunnel4 (Debian packages) when missing, then runs tests/proxy.rs, where
# every test starts its own tinyproxy on a free 127.0.0.1 port with a generated config (and, for
# the https:// proxy, a stunnel in front of it).
# Usage: scripts/proxy_test.sh [extra arguments for the test binary, e.g. a test name]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/apt.sh
source scripts/apt.sh

find_tinyproxy() {
    for p in /usr/bin/tinyproxy /usr/sbin/tinyproxy; do
        if [ -x "$p" ]; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

if ! find_tinyproxy >/dev/null; then
    echo "== installing tinyproxy"
    apt_install tinyproxy
    # The package may start a system tinyproxy on port 8888 (where policy-rc.d allows it). The
    # tests use their own ports, but leave nothing of ours running.
    $sudo service tinyproxy stop >/dev/null 2>&1 || true
    for pidfile in /run/tinyproxy/tinyproxy.pid /var/run/tinyproxy/tinyproxy.pid; do
        pid="$(cat "$pidfile" 2>/dev/null || true)"
        if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" = tinyproxy ]; then
            $sudo kill "$pid" 2>/dev/null || true
        fi
    done
fi
if [ ! -x /usr/bin/stunnel4 ]; then
    echo "== installing stunnel4"
    apt_install stunnel4
    # Its service starts only the tunnels configured in /etc/stunnel, none on install.
fi
echo "== $(find_tinyproxy) ($("$(find_tinyproxy)" -v 2>&1 | head -n 1))"
echo "== /usr/bin/stunnel4 ($(/usr/bin/stunnel4 -version 2>&1 | grep -m 1 '^stunnel'))"

timeout 600 cargo test --all-features --test proxy -- --include-ignored --test-threads=1 "$@"
