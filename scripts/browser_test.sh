#!/usr/bin/env bash
# The chat example in a real browser: headless Chromium opens two chat pages that must see each
# other's joins and messages, and a page without the token that must end with close code 1006.
#
#   scripts/browser_test.sh
#
# Installs Debian's chromium if missing (root, apt-get), builds the chat example, runs it on a
# free loopback port, drives the browser over the DevTools protocol (scripts/browser_cdp.py,
# Python standard library only), prints a PASS/FAIL table, and stops everything it started.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
token=browser-test-token

if ! command -v chromium >/dev/null 2>&1; then
    echo "installing chromium (apt-get)..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq chromium >/dev/null 2>&1 \
        || { apt-get update -qq && apt-get install -y -qq chromium; }
fi
command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 1; }

work=$(mktemp -d)
server_pid=""
browser_pid=""
cleanup() {
    for pid in "$browser_pid" "$server_pid"; do
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            # Chromium leads its own process group (setsid): end its helpers with it.
            kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
            # Give it a moment, then insist.
            for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 -- "-$pid" 2>/dev/null || kill -9 "$pid" 2>/dev/null || true
        fi
    done
    rm -rf "$work"
}
trap cleanup EXIT

echo "building the chat example..."
timeout 600 cargo build --quiet --example chat

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# The binary cargo run would start, run directly so that its PID is the server's.
CHAT_TOKEN=$token "$root/target/debug/examples/chat" "127.0.0.1:$port" --seconds 60 \
    >"$work/chat.log" 2>&1 &
server_pid=$!

for _ in $(seq 100); do
    if python3 -c "import urllib.request, sys; urllib.request.urlopen('http://127.0.0.1:$port/', timeout=1)" 2>/dev/null; then
        break
    fi
    kill -0 "$server_pid" 2>/dev/null || { echo "chat server exited:" >&2; cat "$work/chat.log" >&2; exit 1; }
    sleep 0.1
done

# Port 0: Chromium picks a free DevTools port and writes it to DevToolsActivePort.
setsid chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --disable-extensions --remote-debugging-address=127.0.0.1 --remote-debugging-port=0 \
    --user-data-dir="$work/profile" about:blank >"$work/chromium.log" 2>&1 &
browser_pid=$!

devtools_port=""
for _ in $(seq 200); do
    if [ -s "$work/profile/DevToolsActivePort" ]; then
        devtools_port=$(head -n 1 "$work/profile/DevToolsActivePort")
        [ -n "$devtools_port" ] && break
    fi
    kill -0 "$browser_pid" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$devtools_port" ]; then
    echo "chromium did not start its DevTools endpoint:" >&2
    tail -n 20 "$work/chromium.log" >&2
    exit 1
fi

echo "chat on 127.0.0.1:$port, chromium devtools on 127.0.0.1:$devtools_port"
status=0
timeout 90 python3 "$root/scripts/browser_cdp.py" "$port" "$devtools_port" "$token" || status=$?
if [ "$status" -ne 0 ]; then
    echo "FAIL (exit $status); chat server log:" >&2
    tail -n 20 "$work/chat.log" >&2
    exit "$status"
fi
echo "PASS"
