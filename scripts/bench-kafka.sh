#!/usr/bin/env bash
# End-to-end benchmark over the local broker, beside the broker's own ceiling: three inference
# services and the scaler (SQLite state database, dry-run actuator) as separate processes, fed
# vectors by `autoscaler bench-kafka` (pipelined, as the aggregator publishes), which first
# measures the broker alone (producer-only and consumer-only, messages of a vector's size) and
# then one stage per rate, and prints the tables.
#
#   usage: scripts/bench-kafka.sh [--vectors N (30000)] [--rates LIST (100,1000,10000,0)]
#                                 [--seconds-per-rate S (10)] [--json FILE] [--no-ceiling]
#          scripts/bench-kafka.sh VECTORS [RATE]      (one stage, as before; 0 = unthrottled)
#
# Uses KAFKA_BOOTSTRAP_SERVERS, or starts tansu (scripts/kafka-up.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
vectors=30000
rates="100,1000,10000,0"
seconds=10
json=()
ceiling=(--broker-ceiling)
if [ $# -gt 0 ] && [[ "$1" =~ ^[0-9]+$ ]]; then
    vectors="$1"
    rates="${2:-0}"
    shift $(($# > 1 ? 2 : 1))
fi
while [ $# -gt 0 ]; do
    case "$1" in
        --vectors) vectors="$2"; shift ;;
        --rates) rates="$2"; shift ;;
        --seconds-per-rate) seconds="$2"; shift ;;
        --json) json=(--json "$2"); shift ;;
        --no-ceiling) ceiling=() ;;
        *) echo "bench-kafka: unknown argument $1" >&2; exit 64 ;;
    esac
    shift
done
bash scripts/install-deps.sh >/dev/null
# One build profile (`dev`, optimised: see Cargo.toml) and the tests' target directory.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${AUTOSCALER_CACHE:-$HOME/.cache/autoscaler}/target}"
cargo build --quiet -p autoscaler-cli
export BUS=kafka
export KAFKA_BOOTSTRAP_SERVERS="${KAFKA_BOOTSTRAP_SERVERS:-$(bash scripts/kafka-up.sh | tail -n 1)}"
run="bench-$(date +%s%N)"
export METRICS_TOPIC="metrics-$run" VOTES_TOPIC="votes-$run" DECISIONS_TOPIC="decisions-$run"
export KAFKA_GROUP_PREFIX="$run-" RUST_LOG=warn
bin="$CARGO_TARGET_DIR/debug/autoscaler"
state="$(mktemp -d)"
pids=()
cleanup() {
    # The services stop on the first SIGTERM (a second forces them).
    kill "${pids[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$state"
}
trap cleanup EXIT
trap 'exit 143' INT TERM
# Models: the shipped defaults (trained on first use if absent).
[ -f models/xgboost/model.json ] || bash scripts/train-default-models.sh
# The topics exist before the services subscribe (bench-kafka would create them too).
for m in xgboost random_forest logistic_regression; do
    "$bin" inference --model "$m" --max-skew-sec 0 & pids+=($!)
done
"$bin" scaler --actuator dry-run --decision-window-sec 5 --state-db "$state/scaler.db" & pids+=($!)
sleep 5
"$bin" bench-kafka --vectors "$vectors" --rates "$rates" --seconds-per-rate "$seconds" \
    "${ceiling[@]}" "${json[@]}"
