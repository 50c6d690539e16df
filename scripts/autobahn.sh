#!/usr/bin/env bash
# Run the Autobahn WebSocket testsuite (wstest) against syncws.
#
#   bash scripts/autobahn.sh [options]
#
# Options:
#   --install-only      only install wstest (if missing), then exit
#   --no-install        fail instead of installing wstest when it is missing
#   --no-build          do not run cargo build (use the binaries as they are)
#   --only server|client
#                       run only one side (default: both)
#   --update-expected   copy the new summary to the expected file
#   --deflate           permessage-deflate mode: sections 12 and 13 (compression)
#                       instead of 1-10, testees built with --features deflate and
#                       run with --deflate, UNIMPLEMENTED counted as a failure;
#                       specs autobahn/fuzzing{client,server}-deflate.json, reports
#                       in autobahn/reports/deflate, compared with
#                       autobahn/expected-deflate.txt (about 14 minutes here)
#   --quick             with --deflate: leave out the long cases of every group
#                       (9, 10 and 14-18: a thousand messages of 64-128 KiB or
#                       in many frames), 132 of the 216 cases, about 3 minutes;
#                       the summary is not compared with the expected file
#                       (CI runs this; the full run is the bar)
#   -h, --help          show this help
#
# Environment:
#   AUTOBAHN_CASES          comma-separated case patterns to run instead of
#                           the ones in the spec templates, e.g. "1.*,12.1.*"
#   AUTOBAHN_EXCLUDE_CASES  comma-separated case patterns to exclude
#   AUTOBAHN_SERVER_BIN     testee server command (default: the
#                           autobahn_server example); gets ADDR as argument
#   AUTOBAHN_CLIENT_BIN     testee client command (default: the
#                           autobahn_client example); gets the URL as argument
#                           (both commands are split on whitespace)
#   AUTOBAHN_TIMEOUT        seconds allowed for each wstest/testee run (120;
#                           1800 with --deflate)
#
# Everything listens and connects on 127.0.0.1 only.
# Reports go to autobahn/reports/{server,client}; the combined summary goes
# to autobahn/reports/summary.txt and is compared with autobahn/expected.txt
# (with --deflate: autobahn/reports/deflate/..., autobahn/expected-deflate.txt).
# The exit status is the summary's (non-zero on any failing case).

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PY2=/usr/bin/python2.7
AGENT=syncws

# Python 2 packages for wstest, pinned (the full resolved set, so installs
# are reproducible). autobahntestsuite 25.10.1 is the py2 release that pins
# its own deps; these match those pins plus their transitive deps.
PY2_PIP_BOOTSTRAP=(pip==20.3.4 setuptools==44.1.1 wheel==0.37.1)
PY2_DEPS=(
    autobahntestsuite==25.10.1
    autobahn==0.10.9
    Twisted==19.10.0
    zope.interface==4.6.0
    txaio==2.1.0
    pyOpenSSL==19.1.0
    cryptography==3.3.2
    cffi==1.15.1
    pycparser==2.21
    service-identity==18.1.0
    pyasn1==0.5.1
    pyasn1-modules==0.3.0
    attrs==21.4.0
    Automat==22.10.0
    constantly==15.1.0
    hyperlink==21.0.0
    incremental==16.10.1
    PyHamcrest==1.10.1
    idna==2.10
    ipaddress==1.0.23
    enum34==1.1.10
    typing==3.10.0.0
    six==1.16.0
    klein==17.10.0
    Werkzeug==1.0.1
    Jinja2==2.11.3
    MarkupSafe==1.1.1
    unittest2==1.1.0
    linecache2==1.0.0
    traceback2==1.4.0
    wsaccel==0.6.6
    ujson==2.0.3
    setuptools==44.0.0
)

INSTALL=auto      # auto | only | never
BUILD=1
ONLY=both
UPDATE_EXPECTED=0
DEFLATE=0
QUICK=0

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'autobahn.sh: error: %s\n' "$*" >&2; exit 2; }

usage() { sed -n '2,/^$/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --install-only) INSTALL=only ;;
        --no-install) INSTALL=never ;;
        --no-build) BUILD=0 ;;
        --only)
            [ $# -ge 2 ] || die "--only needs server or client"
            ONLY="$2"; shift ;;
        --only=*) ONLY="${1#--only=}" ;;
        --update-expected) UPDATE_EXPECTED=1 ;;
        --deflate) DEFLATE=1 ;;
        --quick) QUICK=1 ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
    shift
done
case "$ONLY" in server|client|both) ;; *) die "--only takes server or client" ;; esac
if [ "$QUICK" = 1 ]; then
    [ "$DEFLATE" = 1 ] || die "--quick goes with --deflate"
    [ "$UPDATE_EXPECTED" = 0 ] || die "--quick cannot update the expected file"
    # wstest matches a pattern at the start of a case id: 12.*.1 would take 12.1.10-18 too.
    if [ -z "${AUTOBAHN_EXCLUDE_CASES:-}" ]; then
        export AUTOBAHN_EXCLUDE_CASES="12.*.9,12.*.10,12.*.14,12.*.15,12.*.16,12.*.17,12.*.18,\
13.*.9,13.*.10,13.*.14,13.*.15,13.*.16,13.*.17,13.*.18"
    fi
fi

if [ "$DEFLATE" = 1 ]; then
    SPEC_SUFFIX=-deflate
    EXPECTED=autobahn/expected-deflate.txt
    REPORTS_REL=autobahn/reports/deflate
    TIMEOUT_S="${AUTOBAHN_TIMEOUT:-1800}"
    BUILD_FEATURES=(--features deflate)
    TESTEE_ARGS=--deflate
    SUMMARY_ARGS=(--no-unimplemented)
else
    SPEC_SUFFIX=""
    EXPECTED=autobahn/expected.txt
    REPORTS_REL=autobahn/reports
    TIMEOUT_S="${AUTOBAHN_TIMEOUT:-120}"
    BUILD_FEATURES=()
    TESTEE_ARGS=
    SUMMARY_ARGS=()
fi

# ---------------------------------------------------------------------------
# wstest installation
# ---------------------------------------------------------------------------

py2_user_bin() { "$PY2" -c 'import site; print(site.USER_BASE)' 2>/dev/null | sed 's|$|/bin|'; }

wstest_path() {
    local bin
    bin="$(py2_user_bin)" || return 1
    [ -n "$bin" ] && [ -x "$bin/wstest" ] || return 1
    printf '%s/wstest\n' "$bin"
}

wstest_works() {
    local w
    w="$(wstest_path)" || return 1
    "$w" --help >/dev/null 2>&1
}

py2_works() { [ -x "$PY2" ] && "$PY2" -c 'import sys; assert sys.version_info[:2] == (2, 7)' 2>/dev/null; }

# Print the URI of the machine's main Debian archive (not the security one),
# read from the apt sources at run time.
debian_mirror_uri() {
    local f uri=""
    # deb822 files: take the URIs of a stanza whose Suites has a plain suite.
    for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        uri="$(awk '
            function flush() {
                if (uris != "" && suites != "" && suites !~ /-security/ && types ~ /(^|[ \t])deb([ \t]|$)/) {
                    split(uris, u, /[ \t]+/); print u[1]; found = 1; exit
                }
                uris = ""; suites = ""; types = ""
            }
            /^[ \t]*$/ { flush(); next }
            /^URIs:/ { sub(/^URIs:[ \t]*/, ""); uris = $0 }
            /^Suites:/ { sub(/^Suites:[ \t]*/, ""); suites = $0 }
            /^Types:/ { sub(/^Types:[ \t]*/, ""); types = $0 }
            END { if (!found) flush() }
        ' "$f")"
        [ -n "$uri" ] && break
    done
    # Classic one-line format.
    if [ -z "$uri" ]; then
        for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
            [ -f "$f" ] || continue
            case "$f" in */bullseye.list) continue ;; esac
            uri="$(awk '
                $1 == "deb" {
                    i = 2
                    if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                    if ($(i + 1) !~ /-security/ && $i ~ /debian/) { print $i; exit }
                }
            ' "$f")"
            [ -n "$uri" ] && break
        done
    fi
    [ -n "$uri" ] || return 1
    printf '%s\n' "${uri%/}"
}

# Write $2 to $1 only if the content differs. Returns 0 if it changed.
write_if_changed() {
    if [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; then
        return 1
    fi
    printf '%s\n' "$2" >"$1"
}

install_python2() {
    if py2_works; then
        log "python2.7 already installed ($PY2)"
        return
    fi
    [ "$(id -u)" = 0 ] || die "installing python2.7 needs root (apt-get)"
    local uri keyring=""
    uri="$(debian_mirror_uri)" || die "could not find a Debian mirror URI in the apt sources"
    log "adding the bullseye suite from $uri"
    [ -f /usr/share/keyrings/debian-archive-keyring.gpg ] &&
        keyring=" [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]"
    write_if_changed /etc/apt/sources.list.d/bullseye.list \
        "deb${keyring} ${uri} bullseye main" || true
    write_if_changed /etc/apt/preferences.d/bullseye.pref \
        "Package: *
Pin: release n=bullseye
Pin-Priority: 100" || true
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y -t bullseye python2.7 python2.7-dev
    py2_works || die "python2.7 still does not work after apt-get install"
}

install_py2_pip() {
    if "$PY2" -m pip --version >/dev/null 2>&1; then
        log "pip for python2.7 already installed"
        return
    fi
    local tmp
    tmp="$(mktemp -d)"
    log "bootstrapping pip for python2.7"
    python3 -m pip download --quiet --no-deps --only-binary=:all: \
        --python-version 2.7 --implementation py --abi none --platform any \
        -d "$tmp" "${PY2_PIP_BOOTSTRAP[@]}"
    "$PY2" "$tmp"/pip-20.3.4-py2.py3-none-any.whl/pip install --user --no-warn-script-location \
        "$tmp"/*.whl
    rm -rf "$tmp"
    "$PY2" -m pip --version >/dev/null 2>&1 || die "pip for python2.7 does not work"
}

install_wstest() {
    if wstest_works; then
        log "wstest already installed: $(wstest_path)"
        return
    fi
    [ "$INSTALL" != never ] || die "wstest is not installed (run without --no-install)"
    local t0=$SECONDS
    install_python2
    install_py2_pip
    log "installing autobahntestsuite for python2.7"
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$PY2" -m pip install --user --no-warn-script-location \
        "${PY2_DEPS[@]}"
    wstest_works || die "wstest was installed but does not run"
    log "wstest installed in $((SECONDS - t0))s: $(wstest_path)"
}

# ---------------------------------------------------------------------------
# Test run helpers
# ---------------------------------------------------------------------------

# wstest binds its listeners to all interfaces; this wrapper makes every
# listener bind to 127.0.0.1 instead. (The embedded web server of the
# fuzzingserver mode is disabled with -u 0.)
write_wstest_wrapper() {
    cat >"$1" <<'PY'
import sys
from autobahntestsuite import wstest
from twisted.internet import reactor
_listen_tcp = reactor.listenTCP
def _loopback_listen_tcp(port, factory, backlog=50, interface=""):
    return _listen_tcp(port, factory, backlog, interface or "127.0.0.1")
reactor.listenTCP = _loopback_listen_tcp
sys.argv[0] = "wstest"
sys.exit(wstest.run())
PY
}

PIDS=()
TMPDIR_RUN=""

stop_pid() {
    local pid="$1"
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local pid
    for pid in "${PIDS[@]+"${PIDS[@]}"}"; do stop_pid "$pid"; done
    PIDS=()
    [ -n "$TMPDIR_RUN" ] && rm -rf "$TMPDIR_RUN"
    return 0
}

# run_waited CMD...: run CMD in the background and wait for it, so that a
# signal to this script runs the EXIT trap (which stops CMD) at once.
run_waited() {
    local pid rc=0
    "$@" </dev/null &
    pid=$!
    PIDS+=("$pid")
    wait "$pid" || rc=$?
    return "$rc"
}

# A free TCP port on 127.0.0.1 (asked of the kernel).
free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# wait_port PORT PID: wait until 127.0.0.1:PORT accepts connections, while
# process PID is still alive.
wait_port() {
    local port="$1" pid="$2"
    for _ in $(seq 1 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# make_spec TEMPLATE OUT URL OUTDIR: fill a spec template with the URL, the
# report directory and the AUTOBAHN_CASES / AUTOBAHN_EXCLUDE_CASES overrides.
make_spec() {
    python3 - "$@" <<'PY'
import json, os, sys
template, out, url, outdir = sys.argv[1:5]
with open(template) as f:
    spec = json.load(f)
if "servers" in spec:          # fuzzingclient spec
    for server in spec["servers"]:
        server["url"] = url
else:                          # fuzzingserver spec
    spec["url"] = url
spec["outdir"] = outdir
def patterns(name):
    value = os.environ.get(name, "").strip()
    return [p.strip() for p in value.split(",") if p.strip()] if value else None
cases = patterns("AUTOBAHN_CASES")
if cases is not None:
    spec["cases"] = cases
exclude = patterns("AUTOBAHN_EXCLUDE_CASES")
if exclude is not None:
    spec["exclude-cases"] = exclude
with open(out, "w") as f:
    json.dump(spec, f, indent=2)
PY
}

# request_reports PORT: ask the fuzzingserver on 127.0.0.1:PORT to write its
# reports (as the testee client does at the end), so that a client that
# crashed or hung still leaves a report of the cases it ran.
request_reports() {
    python3 - "$1" "$AGENT" <<'PY'
import base64, os, socket, sys
port, agent = int(sys.argv[1]), sys.argv[2]
key = base64.b64encode(os.urandom(16)).decode()
s = socket.create_connection(("127.0.0.1", port), timeout=30)
s.sendall((
    "GET /updateReports?agent=%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (agent, port, key)
).encode())
try:
    while s.recv(65536):   # the server closes the connection once reports are written
        pass
except ConnectionResetError:
    pass
PY
}

# ---------------------------------------------------------------------------
# The two test runs
# ---------------------------------------------------------------------------

REPORTS="$ROOT/$REPORTS_REL"
LOGS="$REPORTS/logs"
RUN_ERRORS=()

# run_error LABEL MESSAGE: note a run that did not finish properly; it goes
# into the summary and makes the script fail.
run_error() {
    log "error: $1: $2"
    RUN_ERRORS+=("$1 ERROR: $2")
}

run_server_tests() {
    local port pid spec outdir="$REPORTS/server" rc=0
    port="$(free_port)"
    spec="$TMPDIR_RUN/fuzzingclient.json"
    rm -rf "$outdir"
    make_spec "autobahn/fuzzingclient$SPEC_SUFFIX.json" "$spec" "ws://127.0.0.1:$port" "$outdir"

    log "server tests: testee server on 127.0.0.1:$port"
    # The background processes get a little longer than the run they serve.
    timeout "$((TIMEOUT_S + 30))" "${SERVER_CMD[@]}" "127.0.0.1:$port" </dev/null >"$LOGS/testee-server.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait_port "$port" "$pid" || die "testee server did not start (see $LOGS/testee-server.log)"

    log "server tests: wstest -m fuzzingclient"
    run_waited timeout "$TIMEOUT_S" "$PY2" "$TMPDIR_RUN/wstest_loopback.py" -m fuzzingclient -s "$spec" \
        >"$LOGS/wstest-fuzzingclient.log" 2>&1 || rc=$?
    [ "$rc" = 0 ] || run_error server "wstest fuzzingclient exited with status $rc (see $REPORTS_REL/logs/wstest-fuzzingclient.log)"
    stop_pid "$pid"
}

run_client_tests() {
    local port pid spec outdir="$REPORTS/client" rc=0
    port="$(free_port)"
    spec="$TMPDIR_RUN/fuzzingserver.json"
    rm -rf "$outdir"
    make_spec "autobahn/fuzzingserver$SPEC_SUFFIX.json" "$spec" "ws://127.0.0.1:$port" "$outdir"

    log "client tests: wstest -m fuzzingserver on 127.0.0.1:$port"
    timeout "$((TIMEOUT_S + 30))" "$PY2" "$TMPDIR_RUN/wstest_loopback.py" -m fuzzingserver -u 0 -s "$spec" \
        </dev/null >"$LOGS/wstest-fuzzingserver.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait_port "$port" "$pid" || die "wstest fuzzingserver did not start (see $LOGS/wstest-fuzzingserver.log)"

    log "client tests: testee client"
    run_waited timeout "$TIMEOUT_S" "${CLIENT_CMD[@]}" "ws://127.0.0.1:$port" \
        >"$LOGS/testee-client.log" 2>&1 || rc=$?
    [ "$rc" = 0 ] || run_error client "testee client exited with status $rc (see $REPORTS_REL/logs/testee-client.log)"
    if [ ! -f "$outdir/index.json" ]; then
        log "client tests: no report written by the testee client; requesting one"
        request_reports "$port" || log "warning: could not request the reports"
    fi
    stop_pid "$pid"
}

# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

main() {
    install_wstest
    [ "$INSTALL" != only ] || return 0
    if [ "$UPDATE_EXPECTED" = 1 ] && [ "$ONLY" != both ]; then
        die "--update-expected needs a run of both sides (no --only)"
    fi

    TMPDIR_RUN="$(mktemp -d)"
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    write_wstest_wrapper "$TMPDIR_RUN/wstest_loopback.py"

    if [ "$BUILD" = 1 ]; then
        log "building the autobahn examples"
        cargo build --release "${BUILD_FEATURES[@]+"${BUILD_FEATURES[@]}"}" \
            --example autobahn_server --example autobahn_client
    fi
    # The overrides are split on whitespace (a command and its arguments).
    local bin="$ROOT/target/release/examples"
    read -r -a SERVER_CMD <<<"${AUTOBAHN_SERVER_BIN:-$bin/autobahn_server $TESTEE_ARGS}"
    read -r -a CLIENT_CMD <<<"${AUTOBAHN_CLIENT_BIN:-$bin/autobahn_client $TESTEE_ARGS}"

    mkdir -p "$LOGS"
    local t0=$SECONDS status=0 rc summary="$REPORTS/summary.txt"
    : >"$summary"
    if [ "$ONLY" != client ]; then
        run_server_tests
        rc=0
        python3 scripts/autobahn_summary.py "${SUMMARY_ARGS[@]+"${SUMMARY_ARGS[@]}"}" "$REPORTS/server" server >>"$summary" || rc=$?
        [ "$rc" -le "$status" ] || status=$rc
    fi
    if [ "$ONLY" != server ]; then
        run_client_tests
        rc=0
        python3 scripts/autobahn_summary.py "${SUMMARY_ARGS[@]+"${SUMMARY_ARGS[@]}"}" "$REPORTS/client" client >>"$summary" || rc=$?
        [ "$rc" -le "$status" ] || status=$rc
    fi
    local e
    for e in "${RUN_ERRORS[@]+"${RUN_ERRORS[@]}"}"; do
        printf '%s\n' "$e" >>"$summary"
        [ "$status" != 0 ] || status=1
    done
    cleanup
    log "test runs took $((SECONDS - t0))s"

    cat "$summary"
    if [ "$UPDATE_EXPECTED" = 1 ]; then
        cp "$summary" "$EXPECTED"
        log "updated $EXPECTED"
    elif [ "$QUICK" = 1 ]; then
        log "quick run: not compared with $EXPECTED"
    elif [ ! -f "$EXPECTED" ]; then
        log "warning: $EXPECTED does not exist (create it with --update-expected)"
    elif ! diff -u --label "$EXPECTED" --label "$REPORTS_REL/summary.txt" "$EXPECTED" "$summary"; then
        log "warning: the summary differs from $EXPECTED (diff above)"
    else
        log "summary matches $EXPECTED"
    fi
    if [ "$status" = 0 ]; then log "PASS"; else log "FAIL: see $summary"; fi
    return "$status"
}

main
