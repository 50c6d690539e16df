#!/usr/bin/env bash
# The server behind a real reverse proxy, loopback only, bounded in time: installs nginx (Debian
# package) when missing, then runs tests/nginx.rs, where every test starts its own nginx in the
# foreground on a free 127.0.0.1 port with a generated config (standard WebSocket proxying,
# X-Forwarded-For) in front of one or two in-process syncws servers, or of one on a Unix socket
# (proxy_pass http://unix:PATH:, the socket in a temporary directory the test removes).
# Usage: scripts/nginx_test.sh [extra arguments for the test binary, e.g. a test name]
set -euo pipefail
cd "$(dirname "$0")/.."

NGINX=/usr/sbin/nginx

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi

if [ ! -x "$NGINX" ]; then
    echo "== installing nginx"
    export DEBIAN_FRONTEND=noninteractive
    install_nginx() {
        timeout 300 $sudo apt-get install -y -q nginx-light \
            || timeout 300 $sudo apt-get install -y -q nginx
    }
    if ! install_nginx; then
        timeout 300 $sudo apt-get update -q
        install_nginx
    fi
    # The package may start a system nginx on port 80 (where policy-rc.d allows it). The tests
    # use their own config and ports, but leave nothing of the package's running.
    $sudo service nginx stop >/dev/null 2>&1 || true
    if [ -f /run/nginx.pid ]; then
        timeout 10 $sudo "$NGINX" -s stop >/dev/null 2>&1 || true
    fi
fi
echo "== $NGINX ($("$NGINX" -v 2>&1 | head -n 1))"

timeout 600 cargo test --all-features --test nginx -- --ignored --test-threads=1 "$@"
