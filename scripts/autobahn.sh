#!/usr/bin/env bash
# Run the Autobahn WebSocket testsuite (wstest) against syncws.
#
#   bash scripts/autobahn.sh [options]
#
# Options:
#   --install-only      only install wstest (if missing), then exit
#                       (the same as bash scripts/autobahn_install.sh)
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

# wstest installation lives in scripts/autobahn_install.sh (idempotent).
install_wstest() {
    if [ "$INSTALL" = never ]; then
        bash "$ROOT/scripts/autobahn_install.sh" --check ||
            die "wstest is not installed (run without --no-install)"
    else
        bash "$ROOT/scripts/autobahn_install.sh"
    fi
}

# ---------------------------------------------------------------------------
# Test run helpers
# ---------------------------------------------------------------------------

# wstest with every listener on 127.0.0.1 (see the script).
WSTEST=("$PY2" "$ROOT/scripts/autobahn_loopback.py")

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
free_port() { python3 "$ROOT/scripts/free_port.py"; }

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
make_spec() { python3 "$ROOT/scripts/autobahn_spec.py" "$@"; }

# request_reports PORT: ask the fuzzingserver on 127.0.0.1:PORT to write its
# reports, so that a client that crashed or hung still leaves a report.
request_reports() { python3 "$ROOT/scripts/autobahn_reports.py" "$1" "$AGENT"; }

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
    run_waited timeout "$TIMEOUT_S" "${WSTEST[@]}" -m fuzzingclient -s "$spec" \
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
    timeout "$((TIMEOUT_S + 30))" "${WSTEST[@]}" -m fuzzingserver -u 0 -s "$spec" \
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
