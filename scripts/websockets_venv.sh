# Sourced by scripts that need Python `websockets` (pinned): installs it into a virtual
# environment under target/ when missing, and sets PY to that environment's python.
#   ROOT=... ; source scripts/websockets_venv.sh
WEBSOCKETS_VERSION=17.4
VENV="$ROOT/target/interop-venv"
PY="$VENV/bin/python"
if ! "$PY" -c "import websockets, sys; sys.exit(websockets.__version__ != '$WEBSOCKETS_VERSION')" 2>/dev/null; then
    echo "==> installing websockets==$WEBSOCKETS_VERSION into $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "websockets==$WEBSOCKETS_VERSION"
fi
