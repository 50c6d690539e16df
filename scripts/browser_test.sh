#!/usr/bin/env bash
# The chat example in a real browser: headless Chromium opens two chat pages that must see each
# other's joins and messages, and a page without the token that must end with close code 1006.
# Then two chat instances share their room through a real redis-server (`--redis`): a page on
# each must see the other's join and what is typed on the other page, across the instances.
#
#   scripts/browser_test.sh
#
# Installs Debian's chromium if missing (root, apt-get) and redis-server (scripts/apt.sh), builds
# the chat example with the redis feature, runs three instances of it (one alone, two on a
# redis-server with persistence off) on free loopback ports, drives the browser over the DevTools
# protocol (scripts/browser_cdp.py, Python standard library only), prints a PASS/FAIL table, and
# stops everything it started, by PID.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
token=browser-test-token
# shellcheck source=scripts/apt.sh
source scripts/apt.sh
REDIS_SERVER=/usr/bin/redis-server

if ! command -v chromium >/dev/null 2>&1; then
    echo "installing chromium (apt-get)..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq chromium >/dev/null 2>&1 \
        || { apt-get update -qq && apt-get install -y -qq chromium; }
fi
if [ ! -x "$REDIS_SERVER" ]; then
    echo "installing redis-server..."
    apt_install redis-server
    # The package may start a system Redis on port 6379; this test runs its own.
    $sudo service redis-server stop >/dev/null 2>&1 || true
fi
command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 1; }

work=$(mktemp -d)
pids=""  # everything started here, the browser first
browser_pid=""
cleanup() {
    for pid in $browser_pid $pids; do
        if kill -0 "$pid" 2>/dev/null; then
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
# With all features, as CI's test run and redis_test.sh build it (redis among them): no extra
# build of the crate for this script.
timeout 600 cargo build --quiet --all-features --example chat

free_port() { python3 "$root/scripts/free_port.py"; }

# start_chat NAME [ARGS...]: a chat instance on a free port, its port in $chat_port once its page
# is served. The binary cargo run would start, run directly so that its PID is the server's.
start_chat() {
    local name=$1 pid
    shift
    chat_port=$(free_port)
    CHAT_TOKEN=$token "$root/target/debug/examples/chat" "127.0.0.1:$chat_port" "$@" \
        >"$work/$name.log" 2>&1 &
    pid=$!
    pids="$pids $pid"
    for _ in $(seq 100); do
        if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$chat_port/', timeout=1)" 2>/dev/null; then
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "chat server $name did not start:" >&2
    cat "$work/$name.log" >&2
    exit 1
}

# redis_pong PORT: whether a Redis on PORT answers PING.
redis_pong() {
    python3 - "$1" <<'PY' 2>/dev/null
import socket, sys
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1) as s:
    s.sendall(b"PING\r\n")
    sys.exit(0 if s.recv(64).startswith(b"+PONG") else 1)
PY
}

# A redis-server of its own, persistence off; the port may be taken between finding it free and
# redis binding it, so try another a few times.
mkdir "$work/redis"
redis_port=""
for _ in 1 2 3; do
    port=$(free_port)
    "$REDIS_SERVER" --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
        --dir "$work/redis" >>"$work/redis.log" 2>&1 </dev/null &
    pid=$!
    pids="$pids $pid"
    for _ in $(seq 50); do
        if redis_pong "$port"; then redis_port=$port; break 2; fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill "$pid" 2>/dev/null || true
done
if [ -z "$redis_port" ]; then
    echo "redis-server did not start:" >&2
    tail -n 20 "$work/redis.log" >&2
    exit 1
fi

start_chat chat --seconds 60
port=$chat_port
# The shared instances outlive a run whose checks all time out, so that they fail for the
# reason under test rather than because an instance stopped.
start_chat one --seconds 180 --redis "redis://127.0.0.1:$redis_port/"
port_one=$chat_port
start_chat two --seconds 180 --redis "redis://127.0.0.1:$redis_port/"
port_two=$chat_port

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

echo "chat on 127.0.0.1:$port; on redis-server 127.0.0.1:$redis_port, chat one on" \
    "127.0.0.1:$port_one and two on 127.0.0.1:$port_two; chromium devtools on 127.0.0.1:$devtools_port"
status=0
# Each wait is bounded (20 s in browser_cdp.py): room for every shared check to time out.
timeout 180 python3 "$root/scripts/browser_cdp.py" "$port" "$devtools_port" "$token" \
    "$port_one" "$port_two" || status=$?
if [ "$status" -ne 0 ]; then
    echo "FAIL (exit $status)" >&2
    for log in chat one two redis; do
        echo "-- $log log:" >&2
        tail -n 20 "$work/$log.log" >&2
    done
    exit "$status"
fi
echo "PASS"
