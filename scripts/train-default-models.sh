#!/usr/bin/env bash
# Reproduce the shipped default models in models/ from data the project generates itself:
# simulated training runs (synthetic diurnal, spiky, ramp and step traces under a random replica
# policy; never the demo's NASA trace), then `autoscaler train` split by run. Same seed, same
# bytes: the metadata's created_at is fixed and every random choice is seeded.
#
#   scripts/train-default-models.sh            # seed 42 into models/
#   SEED=7 OUT=/tmp/models scripts/train-default-models.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SEED="${SEED:-42}"
OUT="${OUT:-models}"
CSV="${CSV:-output/simulated_training_seed${SEED}.csv}"
CREATED_AT="${CREATED_AT:-2025-01-01T00:00:00Z}"
bash scripts/install-deps.sh >/dev/null
# The one build profile of the tests and the demo (dev, optimised): no second compile.
cargo build --quiet -p autoscaler-cli
bin="${CARGO_TARGET_DIR:-target}/debug/autoscaler"
"$bin" training-data --seed "$SEED" --runs 8 --days 2 --out "$CSV"
# The shipped models take one feature vector each (no history): every consumer of models/ —
# the demo, the backtest's ensemble, a first poll — can use them from the first vector.
FEATURES="${FEATURES:-request_rate_rps,error_rate_pct,p50_latency_ms,p95_latency_ms,p99_latency_ms,cpu_usage_pct,memory_usage_mb,delta_rps,delta_p95_latency_ms,delta_cpu_usage_pct,rps_per_replica,cpu_per_replica_pct}"
"$bin" train --data "$CSV" --out "$OUT" --split by-run --seed "$SEED" --created-at "$CREATED_AT" \
    --features "$FEATURES"
# A held-out evaluation on runs simulated with another seed (never trained on).
"$bin" training-data --seed "$((SEED + 1000))" --runs 4 --days 2 --out "output/simulated_heldout_seed$((SEED + 1000)).csv"
"$bin" evaluate --data "output/simulated_heldout_seed$((SEED + 1000)).csv" --models "$OUT" \
    --json-out output/evaluation_default_models.json --plot output/evaluation_default_models.svg
