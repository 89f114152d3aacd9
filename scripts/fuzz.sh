#!/usr/bin/env bash
# The long fuzz run: every decoder (feature vector, vote, decision, outbox row, service-state
# row, Prometheus answer) under FUZZ_CASES structured random inputs (default 1,000,000 each),
# with proptest on the stable toolchain (no nightly, no sanitizer build). Prints, per decoder,
# the count, the time and "no panic". The test suite runs a short pass of the same tests.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${AUTOSCALER_CACHE:-$HOME/.cache/autoscaler}/target}"
export FUZZ_CASES="${FUZZ_CASES:-1000000}"
for t in "autoscaler-contract fuzz_" "autoscaler-scaler fuzz_" "autoscaler-aggregator fuzz_"; do
    set -- $t
    cargo test -p "$1" --test fuzz -- --ignored --test-threads=1 --nocapture "$2"
done
