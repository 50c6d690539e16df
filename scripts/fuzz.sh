#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a while and prints a table of the runs.
#
#   bash scripts/fuzz.sh                  # each target 60 s
#   bash scripts/fuzz.sh 600              # each target 10 minutes
#   bash scripts/fuzz.sh 600 utf8 frame_server   # only these targets
#   bash scripts/fuzz.sh --smoke          # each target ~10 s: the CI pass
#
# Exits non-zero if any target finds a crash (a panic, a failed assertion, an ASan report, an
# input that takes over 20 s or more than 2 GiB). The input is kept under fuzz/artifacts/<target>/;
# replay it with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run <target> fuzz/artifacts/<target>/<file>
#
# The committed seeds in fuzz/corpus/<target>/ are only read; what the fuzzer finds goes to
# fuzz/target/corpus/<target>/ (ignored by git) and is reused by the next run on this machine.
# Regenerate the seeds after changing a target's input format:
#   cargo run --manifest-path fuzz/Cargo.toml --example seed_corpus
#
# cargo fuzz passes nightly-only flags (-Zsanitizer=address, ...) to rustc. This machine has only
# the stable toolchain, so the flags are unlocked with RUSTC_BOOTSTRAP=1 (harmless on nightly).
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS=(frame_server frame_client frame_deflate frame_stream handshake_request handshake_response utf8 inflate socks_reply)
seconds=60
if [ "${1:-}" = "--smoke" ]; then
    seconds=10
    shift
elif [[ "${1:-}" =~ ^[0-9]+$ ]]; then
    seconds=$1
    shift
fi
if [ $# -gt 0 ]; then
    TARGETS=("$@")
fi

export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

logs=fuzz/target/logs
mkdir -p "$logs"
echo "== building the fuzz targets ($(cargo fuzz --version))"
start=$(date +%s)
build() {
    if ! cargo fuzz build "$@" >"$logs/build.log" 2>&1; then
        cat "$logs/build.log"
        echo "fuzz.sh: the build failed" >&2
        exit 1
    fi
}
if [ $# -eq 0 ]; then
    build
else
    # cargo fuzz builds one target or all of them.
    for t in "${TARGETS[@]}"; do build "$t"; done
fi
echo "   built in $(( $(date +%s) - start )) s"
# The harness's own tests: known inputs give the known messages, replies and ends, so a harness
# that silently stopped checking anything would fail here.
echo "== the harness's own tests"
if ! cargo test --manifest-path fuzz/Cargo.toml --lib >"$logs/harness.log" 2>&1; then
    cat "$logs/harness.log"
    echo "fuzz.sh: the harness's own tests failed" >&2
    exit 1
fi
grep -m 1 "test result" "$logs/harness.log"

rows=()
failed=0
for t in "${TARGETS[@]}"; do
    work=fuzz/target/corpus/$t
    mkdir -p "$work" "fuzz/artifacts/$t"
    log=$logs/$t.log
    echo "== $t for ${seconds} s (log: $log)"
    t0=$(date +%s)
    status=0
    # One job, one process; the first corpus directory is where new inputs are written.
    cargo fuzz run "$t" "$work" "fuzz/corpus/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=20 \
        -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" >"$log" 2>&1 || status=$?
    took=$(( $(date +%s) - t0 ))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    [ -n "$execs" ] || execs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -n 1)
    if [ "$status" -eq 0 ]; then
        result=ok
    else
        failed=1
        artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
        result="FAILED (exit $status) ${artifact:-see $log}"
        echo "-- $t failed:"
        grep -A 6 -E "panicked at|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)" "$log" \
            | grep -v -E '^\s+([0-9]+: |at |#[0-9]+ )' | head -n 30 || true
        grep -E "Test unit written to|^0x" "$log" | head -n 3 || true
    fi
    rows+=("$(printf '%-20s | %7s | %12s | %s' "$t" "$took" "${execs:-?}" "$result")")
done

echo
printf '%-20s | %7s | %12s | %s\n' target seconds executions result
printf '%-20s-|-%7s-|-%12s-|-%s\n' "--------------------" "-------" "------------" "------"
printf '%s\n' "${rows[@]}"
exit $failed
