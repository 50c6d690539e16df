#!/usr/bin/env bash
# permessage-deflate interop with Python's `websockets` (sync API), both directions:
#
#   1. websockets clients (several extension settings) against the syncws echo_server example
#      with --deflate, through a byte-counting relay;
#   2. the syncws client (tests/interop_deflate.rs) against websockets echo servers (several
#      settings), counting bytes on its socket.
#
# Each checks that compression was negotiated, that every message (text and binary, 0 B to
# 1 MiB, whole and fragmented) comes back byte for byte, and that the wire carried far fewer
# bytes than the payloads.
#
#   bash scripts/interop_deflate.sh
#
# websockets is installed (pinned) into a virtual environment under target/ when missing.
# Everything listens on 127.0.0.1 only.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

source "$ROOT/scripts/websockets_venv.sh"

log() { printf '==> %s\n' "$*" >&2; }

PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]+"${PIDS[@]}"}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    [ -n "${FIFO_DIR:-}" ] && rm -rf "$FIFO_DIR"
    return 0
}
trap cleanup EXIT

log "building the echo_server example and the interop test"
cargo build --release --quiet --features deflate --example echo_server
cargo test --release --quiet --features deflate --test interop_deflate --no-run

# 1. websockets clients -> syncws server
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
target/release/examples/echo_server "127.0.0.1:$port" --deflate >/dev/null 2>&1 &
PIDS+=("$!")
for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.05
done
log "websockets $WEBSOCKETS_VERSION clients -> syncws echo_server --deflate"
timeout 120 "$PY" scripts/interop_deflate.py client "ws://127.0.0.1:$port/"

# 2. syncws client -> websockets servers; the servers run until their stdin closes
FIFO_DIR="$(mktemp -d)"
mkfifo "$FIFO_DIR/stdin" "$FIFO_DIR/stdout"
"$PY" scripts/interop_deflate.py servers <"$FIFO_DIR/stdin" >"$FIFO_DIR/stdout" &
PIDS+=("$!")
exec 7>"$FIFO_DIR/stdin" 8<"$FIFO_DIR/stdout"
servers=""
while read -r -t 30 line <&8; do
    [ "$line" = ready ] && break
    servers="$servers$line;"
done
[ -n "$servers" ] || { log "the websockets servers did not start"; exit 1; }
log "syncws client -> websockets $WEBSOCKETS_VERSION servers"
SYNCWS_INTEROP_SERVERS="$servers" timeout 300 cargo test --release --quiet --features deflate \
    --test interop_deflate -- --ignored --nocapture 2>&1 | grep -v '^$'
exec 7>&-
log "interop with websockets $WEBSOCKETS_VERSION: PASS"
