#!/usr/bin/env bash
# The fan-out benchmark with Python `websockets` (sync server, thread-pool broadcast) as a
# reference beside the Hub and Broadcast: installs websockets (pinned, as interop_deflate.sh
# does) into a virtual environment under target/ when missing, then runs
#   cargo bench --bench fanout -- --python VENV_PYTHON [ARGS]
# ARGS as the bench takes them (--members, --stalled, --seconds, --rate, --size, --quick).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source "$ROOT/scripts/websockets_venv.sh"
exec cargo bench --bench fanout -- --python "$PY" "$@"
