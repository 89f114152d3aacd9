#!/usr/bin/env bash
# Footprint of each service: peak resident memory (VmHWM, /usr/bin/time -v's maximum resident
# set size) and start-up time (spawn → first message handled, on the local broker), and the
# binary's size, measured by `autoscaler bench-footprint` (see its help).
#
#   usage: scripts/bench-footprint.sh [--vectors N (2000)] [--json FILE]
#
# Uses KAFKA_BOOTSTRAP_SERVERS, or starts tansu (scripts/kafka-up.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh >/dev/null
# One build profile (`dev`, optimised: see Cargo.toml) and the tests' target directory.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${AUTOSCALER_CACHE:-$HOME/.cache/autoscaler}/target}"
cargo build --quiet -p autoscaler-cli
export KAFKA_BOOTSTRAP_SERVERS="${KAFKA_BOOTSTRAP_SERVERS:-$(bash scripts/kafka-up.sh | tail -n 1)}"
run="footprint-$(date +%s%N)"
export METRICS_TOPIC="metrics-$run" VOTES_TOPIC="votes-$run" DECISIONS_TOPIC="decisions-$run"
export KAFKA_GROUP_PREFIX="$run-" RUST_LOG=warn
bin="$CARGO_TARGET_DIR/debug/autoscaler"
[ -f models/xgboost/model.json ] || bash scripts/train-default-models.sh
"$bin" bench-footprint --bus kafka "$@"
strip -o "${bin}.stripped" "$bin" && echo "binary stripped: $(stat -c %s "${bin}.stripped") bytes"
rm -f "${bin}.stripped"
