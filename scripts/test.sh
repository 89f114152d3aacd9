#!/usr/bin/env bash
# The whole test suite: formatting, lints, every test of the workspace, and the demo as a user
# runs it (the tests' build profile, timed, twice with one seed). Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
# Build artefacts are cached outside the clone, so a fresh clone on the same machine (CI) reuses
# the compiled dependencies (rdkafka, bollard, rusqlite, XGBoost bindings …).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${AUTOSCALER_CACHE:-$HOME/.cache/autoscaler}/target}"

bash scripts/install-deps.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

echo "== services for the integration tests"
# A Kafka-protocol broker (tansu, built once and cached) unless KAFKA_BOOTSTRAP_SERVERS names one,
# and confluent-kafka in a venv as an independent client.
started_kafka=""
if [ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
    KAFKA_BOOTSTRAP_SERVERS="$(bash scripts/kafka-up.sh | tail -n 1)"
    started_kafka=1
fi
export KAFKA_BOOTSTRAP_SERVERS
AUTOSCALER_PYTHON_KAFKA="$(bash scripts/python-kafka-venv.sh | tail -n 1)"
export AUTOSCALER_PYTHON_KAFKA
cleanup_services() { bash scripts/moto-down.sh || true; if [ -n "$started_kafka" ]; then bash scripts/kafka-down.sh || true; fi; }
trap cleanup_services EXIT

# A single-node Docker Swarm for the Swarm actuator's tests (services/scaler/tests/swarm.rs):
# installs docker.io, starts dockerd and builds the test image when needed; left running.
if bash scripts/swarm-up.sh; then
    export AUTOSCALER_REQUIRE_SWARM=1   # the daemon is up: a Swarm test may not skip
else
    echo "== swarm-up failed: the Swarm tests will print SKIPPED (fatal under CI/REQUIRE_INTEGRATION)" >&2
fi

# moto's EC2 server on 127.0.0.1 for crates/nodes/tests/ec2.rs (venv cached, server stopped on exit).
AUTOSCALER_MOTO_ENDPOINT="$(bash scripts/moto-up.sh | tail -n 1)"
export AUTOSCALER_MOTO_ENDPOINT

echo "== cargo test"
# Tests that need real infrastructure (Kafka, Prometheus, a Swarm) are `#[ignore = "needs …"]`,
# so a bare `cargo test` lists them as ignored; here they run, and under CI a missing service
# fails them.
# The long fuzz runs are ignored too (`scripts/fuzz.sh` runs them with a million cases each);
# here they run with FUZZ_CASES cases, enough to exercise every decoder, not to take an hour.
FUZZ_CASES="${FUZZ_CASES:-5000}" cargo test --workspace --all-targets -- --include-ignored

echo "== load-testing: shape tests and a Locust smoke run against the demo service"
python3 -m unittest discover -s load-testing -p 'test_*.py'
smoke_dir="$(mktemp -d)"
"$CARGO_TARGET_DIR/debug/autoscaler" demo-service --listen 127.0.0.1:0 --service front-end \
    --work-ms 2 >"$smoke_dir/log" 2>&1 &
smoke_pid=$!
for _ in $(seq 1 100); do grep -q 'listening on http://' "$smoke_dir/log" && break; sleep 0.1; done
smoke_url="$(grep -o 'http://127.0.0.1:[0-9]*' "$smoke_dir/log" | head -n 1)"
[ -n "$smoke_url" ] || { cat "$smoke_dir/log"; exit 1; }
bash scripts/locust-smoke.sh "$smoke_url"
kill "$smoke_pid"; wait "$smoke_pid"
rm -rf "$smoke_dir"

echo "== demo (the tests' build profile): under 120 s, same seed -> same summary"
cargo build --quiet
models="$(mktemp -d)"
out1="$(mktemp)"; out2="$(mktemp)"
trap 'rm -rf "$models" "$out1" "$out2"; cleanup_services' EXIT
start=$(date +%s)
"$CARGO_TARGET_DIR/debug/autoscaler" demo --seed 3 --models-dir "$models" >"$out1"
secs=$(( $(date +%s) - start ))
"$CARGO_TARGET_DIR/debug/autoscaler" demo --seed 3 --models-dir "$models" >"$out2"
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

echo "== deployment: docker-compose.ml.yml validated, images built here, the Swarm stack under load, development mode, stop-all"
# Cold (no cached images): see scripts/compose-test.sh's header for the measured cost.
bash scripts/compose-test.sh
