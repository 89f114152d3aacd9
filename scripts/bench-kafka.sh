#!/usr/bin/env bash
# End-to-end benchmark over the local broker: three inference services and the scaler as
# separate processes, fed N vectors by `autoscaler bench-kafka`, which prints the table.
#   usage: scripts/bench-kafka.sh [VECTORS (3000)] [RATE per second (0 = as fast as acknowledged)]
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-3000}"
RATE="${2:-0}"
cargo build --release --quiet
export BUS=kafka
export KAFKA_BOOTSTRAP_SERVERS="${KAFKA_BOOTSTRAP_SERVERS:-$(bash scripts/kafka-up.sh | tail -n 1)}"
run="bench-$(date +%s)"
export METRICS_TOPIC="metrics-$run" VOTES_TOPIC="votes-$run" DECISIONS_TOPIC="decisions-$run"
export KAFKA_GROUP_PREFIX="$run-" RUST_LOG=warn
bin="${CARGO_TARGET_DIR:-target}/release/autoscaler"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
# Models: the shipped defaults (trained on first use if absent).
[ -f models/xgboost/model.json ] || $bin run --duration-hours 0.1 >/dev/null
for m in xgboost random_forest logistic_regression; do
    $bin inference --model "$m" --max-skew-sec 0 & pids+=($!)
done
$bin scaler --actuator dry-run --decision-window-sec 5 & pids+=($!)
sleep 5
$bin bench-kafka --vectors "$N" --rate "$RATE"
