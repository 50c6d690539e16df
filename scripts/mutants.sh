#!/usr/bin/env bash
# Mutation testing with cargo-mutants (issue #21): does a test notice when the code changes?
#
#   scripts/mutants.sh [SHARD/OF] [cargo-mutants args...] [-- nextest args...]
#
#   scripts/mutants.sh                        # the whole crate (a day or more on 2 cores)
#   scripts/mutants.sh 3/20                   # one shard of it
#   scripts/mutants.sh -f src/proto/frame.rs  # one file (a few minutes for a proto file)
#   scripts/mutants.sh -f 'src/proto/*.rs'    # the sans-IO core without deflate/
#   scripts/mutants.sh -f src/io/head.rs -C --lib            # cargo args: unit tests only
#   scripts/mutants.sh -f src/io/tls_stream.rs -- -E 'binary(tls)' # a nextest filter after --
#
# Each mutant is cheap: tests built without debug info (CARGO_PROFILE_*_DEBUG=0), one mutant at
# a time (-j 1) under `nice`, cargo-nextest with fail-fast and a per-test deadline of 2 x 5 s
# (scripts/nextest.toml), so a mutant that makes a loop unbounded fails in seconds. When every
# -f is under src/proto/ only the library's unit tests run (`-C --lib`): the sans-IO core is
# tested beside each module (only its `proto::` tests run, without default features), and one
# test binary relinks in seconds. Suites that need external servers (nginx, tinyproxy,
# microsocks, Python) stay ignored here, as in `cargo test`. Everything else runs with all
# features, where rustls serves wss://: give src/tls/native.rs a pass of its own (`-f
# src/tls/native.rs`, run with the default features) and leave it out of the others (`-e
# src/tls/native.rs`).
#
# Mutants listed in scripts/mutants-equivalent.txt (each with its reason) are skipped.
# Results go to mutants.out/ (git-ignored); a summary and the missed list are printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

shard=()
if [[ $# -gt 0 && $1 =~ ^[0-9]+/[0-9]+$ ]]; then
    shard=(--shard "$1")
    shift
fi

mutants_args=()
nextest_args=()
while [[ $# -gt 0 ]]; do
    if [[ $1 == -- ]]; then
        shift
        nextest_args=("$@")
        break
    fi
    mutants_args+=("$1")
    shift
done

# Only proto files named: unit tests only. Only the native-tls backend named: default features.
files=0
proto_only=1
native_only=1
for ((i = 0; i < ${#mutants_args[@]}; i++)); do
    file=
    case ${mutants_args[i]} in
        -f | --file) file=${mutants_args[i + 1]:-} ;;
        --file=*) file=${mutants_args[i]#--file=} ;;
        *) continue ;;
    esac
    files=$((files + 1))
    [[ $file == src/proto/* ]] || proto_only=0
    [[ $file == src/tls/native.rs ]] || native_only=0
done
narrow=(--all-features)
if [[ $files -gt 0 && $native_only -eq 1 ]]; then
    # With every feature on, rustls serves wss:// and the native-tls code is not run at all.
    narrow=()
    echo "mutants.sh: only src/tls/native.rs named, running with the default features" >&2
fi
test_filter=()
if [[ $files -gt 0 && $proto_only -eq 1 ]]; then
    # The sans-IO core needs no TLS; deflate/ only its own feature.
    narrow=(--no-default-features -C --lib)
    [[ " ${mutants_args[*]} " == *deflate* ]] && narrow+=(--features deflate)
    test_filter=(-E 'test(/^proto::/)')
    echo "mutants.sh: only src/proto/ named, running its unit tests (--lib, proto::)" >&2
fi

excludes=()
while IFS= read -r line; do
    [[ -z $line || $line == \#* ]] && continue
    excludes+=(-E "$line")
done < scripts/mutants-equivalent.txt

export CARGO_PROFILE_TEST_DEBUG=0 CARGO_PROFILE_DEV_DEBUG=0
export RUST_BACKTRACE=0

start=$(date +%s)
status=0
nice -n 15 cargo mutants \
    --test-tool nextest \
    -j 1 \
    --timeout 120 \
    --build-timeout 600 \
    "${shard[@]}" "${narrow[@]}" "${excludes[@]}" "${mutants_args[@]}" \
    -- --config-file scripts/nextest.toml --profile mutants --no-tests=warn "${test_filter[@]}" "${nextest_args[@]}" ||
    status=$?
elapsed=$(($(date +%s) - start))
# --list, --list-files: nothing was run, so no summary.
[[ " ${mutants_args[*]} " == *" --list"* ]] && exit "$status"

out=mutants.out
for ((i = 0; i < ${#mutants_args[@]}; i++)); do
    case ${mutants_args[i]} in
        -o | --output) out=${mutants_args[i + 1]}/mutants.out ;;
        --output=*) out=${mutants_args[i]#--output=}/mutants.out ;;
    esac
done
count() { if [[ -f $out/$1 ]]; then grep -c . "$out/$1" || true; else echo 0; fi; }
echo
echo "mutants.sh: caught $(count caught.txt), missed $(count missed.txt)," \
    "timeout $(count timeout.txt), unviable $(count unviable.txt)" \
    "in $((elapsed / 60)) min $((elapsed % 60)) s"
# Caught by a per-test deadline (nextest's TIMEOUT): a loop without a bound under that mutant.
if [[ -d $out/log ]]; then
    hung=$(grep -l 'TIMEOUT' "$out"/log/*.log 2>/dev/null || true)
    if [[ -n $hung ]]; then
        echo "caught by a per-test deadline (an unbounded loop under the mutant):"
        for f in $hung; do grep -m 1 '^\*\*\* ' "$f" | sed 's/^\*\*\* /  /'; done
    fi
fi
if [[ -s $out/missed.txt ]]; then
    echo "missed:"
    sed 's/^/  /' "$out/missed.txt"
fi
if [[ -s $out/timeout.txt ]]; then
    echo "timeout (cargo-mutants' own limit; look for an unbounded loop):"
    sed 's/^/  /' "$out/timeout.txt"
fi
# cargo-mutants exits 2 when mutants were missed, 3 on timeouts: pass that on.
exit "$status"
