#!/usr/bin/env bash
# The whole test suite: formatting, lints, every test of the workspace, and the demo as a user
# runs it (release build, timed, twice with one seed). Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

bash scripts/install-deps.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

echo "== cargo test"
cargo test --workspace --all-targets

echo "== demo (release): under 120 s, same seed -> same summary"
cargo build --release --quiet
models="$(mktemp -d)"
out1="$(mktemp)"; out2="$(mktemp)"
trap 'rm -rf "$models" "$out1" "$out2"' EXIT
start=$(date +%s)
./target/release/autoscaler demo --seed 3 --models-dir "$models" >"$out1"
secs=$(( $(date +%s) - start ))
./target/release/autoscaler demo --seed 3 --models-dir "$models" >"$out2"
passed=0; failed=0
check() {
    if eval "$2"; then echo "ok: $1"; passed=$((passed + 1));
    else echo "FAILED: $1"; failed=$((failed + 1)); fi
}
check "demo finished in ${secs} s (< 120 s, models trained included)" "[ $secs -lt 120 ]"
check "demo printed decision blocks naming all three models" \
    "grep -q 'SCALING DECISION #1' '$out1' && grep -q xgboost '$out1' && grep -q random_forest '$out1' && grep -q logistic_regression '$out1'"
check "demo printed the summary" "grep -q 'Replica-hours' '$out1' && grep -q 'SLA-violation minutes' '$out1'"
check "same seed, same summary" "diff <(sed -n '/^SUMMARY/,\$p' '$out1') <(sed -n '/^SUMMARY/,\$p' '$out2') >/dev/null"
sed -n '/^SUMMARY/,$p' "$out1"
echo "demo checks: ${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]
