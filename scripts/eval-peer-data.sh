#!/usr/bin/env bash
# Real data, not in CI: train on the Sock Shop GKE runs of some load patterns and evaluate on
# another, from the peer project's data (read in place; never copied into this repository).
#
#   scripts/eval-peer-data.sh                       # train on ramp + constant, test on spike
#   TRAIN_PATTERNS="spike constant" TEST_PATTERN=ramp scripts/eval-peer-data.sh
#
# Labels are re-derived (p95 above SLA_MS in any of the next 2 polls; the peer's own labels
# include the current row and are ignored). The data has no replica counts, so the models take
# the ten contract features only. Models and outputs go to output/peer/ (not versioned).
set -euo pipefail
cd "$(dirname "$0")/.."
PEER="${PEER_DATA:-../shared/peer-data/sockshop-ml-autoscaler}/kafka-structured/data/gke/experiments"
TRAIN_PATTERNS="${TRAIN_PATTERNS:-ramp constant}"
TEST_PATTERN="${TEST_PATTERN:-spike}"
SLA_MS="${SLA_MS:-35.68}"   # the peer project's GKE SLA on p95
SEED="${SEED:-42}"
OUT="${OUT:-output/peer}"
[ -d "$PEER" ] || { echo "no peer data at $PEER (set PEER_DATA)" >&2; exit 1; }
cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-target}/release/autoscaler"
train=(); test=()
for p in $TRAIN_PATTERNS; do for f in "$PEER/$p"/run_*/metrics.csv; do train+=("$p=$f"); done; done
for f in "$PEER/$TEST_PATTERN"/run_*/metrics.csv; do test+=("$TEST_PATTERN=$f"); done
echo "== train on [$TRAIN_PATTERNS] (${#train[@]} runs), split by run; SLA p95 ${SLA_MS} ms"
"$bin" train --data "${train[@]}" --out "$OUT/models" --split by-run --seed "$SEED" \
    --sla-p95-ms "$SLA_MS" --created-at 2025-01-01T00:00:00Z
echo
echo "== evaluate on [$TEST_PATTERN] (${#test[@]} runs, never trained on)"
"$bin" evaluate --data "${test[@]}" --models "$OUT/models" \
    --json-out "$OUT/evaluation_${TEST_PATTERN}.json" --plot "$OUT/evaluation_${TEST_PATTERN}.svg"
