#!/usr/bin/env bash
# Robustness checks, bounded in time, loopback only:
#   faults, hostile input, load and shutdown against a server process (tests/stress.rs), then
#   the same server code behind a real nginx (scripts/nginx_test.sh).
# Usage: scripts/stress.sh [--fast]   (--fast: the CI-sized run of tests/stress.rs, no nginx)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--fast" ]; then
    timeout 300 cargo test --release --test stress
    exit
fi
echo "== stress: faults, hostile input, load (full size)"
timeout 900 cargo test --release --test stress -- --full
echo "== behind nginx"
timeout 600 bash scripts/nginx_test.sh
