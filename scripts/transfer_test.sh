#!/usr/bin/env bash
# 1 GiB through the `transfer` example's release build, loopback only: builds it, then runs the
# ignored test `a_gib_in_bounded_memory` of tests/transfer.rs, which starts `transfer serve` and
# `transfer send` as child processes and checks the copy, both SHA-1 digests and each process's
# peak RSS (under 32 MiB). Needs about 2 GiB of disk under target/tmp, removed afterwards.
# The throughput against a raw TCP copy: cargo bench --bench transfer.
# Usage: scripts/transfer_test.sh [extra arguments for the test binary]
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --example transfer
SYNCWS_RELEASE_EXAMPLES="$PWD/target/release/examples" \
    timeout 600 cargo test --all-features --test transfer -- --ignored --nocapture "$@"
