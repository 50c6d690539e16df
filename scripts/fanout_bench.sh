#!/usr/bin/env bash
# The fan-out benchmark with Python `websockets` (sync server, thread-pool broadcast) as a
# reference beside the Hub and Broadcast: installs websockets (pinned, as interop_deflate.sh
# does) into a virtual environment under target/ when missing, then runs
#   cargo bench --bench fanout -- --python VENV_PYTHON [ARGS]
# ARGS as the bench takes them (--members, --stalled, --seconds, --rate, --size, --quick).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
WEBSOCKETS_VERSION=17.4
VENV="$ROOT/target/interop-venv"
PY="$VENV/bin/python"
if ! "$PY" -c "import websockets, sys; sys.exit(websockets.__version__ != '$WEBSOCKETS_VERSION')" 2>/dev/null; then
    echo "==> installing websockets==$WEBSOCKETS_VERSION into $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "websockets==$WEBSOCKETS_VERSION"
fi
exec cargo bench --bench fanout -- --python "$PY" "$@"
