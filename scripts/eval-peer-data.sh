#!/usr/bin/env bash
# Real data, not in CI: train on the Sock Shop GKE runs of two load patterns and evaluate on the
# third, for every such split, from the peer project's data (read in place; never copied into
# this repository).
#
#   scripts/eval-peer-data.sh                        # the three splits, then a summary table
#   TEST_PATTERNS=spike scripts/eval-peer-data.sh    # only "train on ramp + constant, test on spike"
#   FEATURES=request_rate_rps,p95_latency_ms scripts/eval-peer-data.sh   # another feature list
#   BIN=/path/to/old/autoscaler OUT=output/peer-before scripts/eval-peer-data.sh   # another build
#   SELECT_FEATURES=1 scripts/eval-peer-data.sh      # feature list chosen on the training patterns
#
# With SELECT_FEATURES=1 each split's feature list is chosen among FEATURE_SETS (`history`: the
# default list, lags, rolling statistics and service identity included; `contract`: the ten
# contract features only) by leaving each *training* pattern out in turn (train on the other
# training patterns, evaluate on it) and keeping the list whose best voting rule has the
# higher mean F1 (a tie keeps `history`); the test pattern plays no part in the choice.
#
# Labels are re-derived (p95 above SLA_MS in any of the next 2 polls; the peer's own labels
# include the current row and are ignored). Within the training patterns the split is by run:
# the thresholds (and the calibration, and the weighted rule's weights) come from validation
# runs only; the test pattern is never seen before `evaluate`. The data has no replica counts,
# so no per-replica feature is used. Models and outputs go to output/peer/<test pattern>/ (not
# versioned); the summary (per model and voting rule: precision, recall, F1, ROC-AUC, PR-AUC,
# Brier; then each model's calibration from its model card) is printed last and written to
# output/peer/summary.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
PEER="${PEER_DATA:-../shared/peer-data/sockshop-ml-autoscaler}/kafka-structured/data/gke/experiments"
PATTERNS="${PATTERNS:-constant ramp spike}"
TEST_PATTERNS="${TEST_PATTERNS:-$PATTERNS}"
SLA_MS="${SLA_MS:-35.68}"   # the peer project's GKE SLA on p95
SEED="${SEED:-42}"
OUT="${OUT:-output/peer}"
# The optimised dev build the tests and the demo use (Cargo.toml: [profile.dev] opt-level 2).
PROFILE="${PROFILE:-dev}"
[ -d "$PEER" ] || { echo "no peer data at $PEER (set PEER_DATA)" >&2; exit 1; }
if [ -n "${BIN:-}" ]; then
    bin="$BIN"   # a binary built elsewhere (e.g. an older commit's, for a "before" table)
else
    cargo build --quiet --profile "$PROFILE" -p autoscaler-cli
    dir="$PROFILE"; [ "$PROFILE" = dev ] && dir=debug
    bin="${CARGO_TARGET_DIR:-target}/$dir/autoscaler"
fi
extra=()
[ -n "${FEATURES:-}" ] && extra+=(--features "$FEATURES")
[ -n "${TARGET_RECALL:-}" ] && extra+=(--target-recall "$TARGET_RECALL")
SELECT_FEATURES="${SELECT_FEATURES:-}"
FEATURE_SETS="${FEATURE_SETS:-history contract}"
CONTRACT_FEATURES=request_rate_rps,error_rate_pct,p50_latency_ms,p95_latency_ms,p99_latency_ms,cpu_usage_pct,memory_usage_mb,delta_rps,delta_p95_latency_ms,delta_cpu_usage_pct
if [ -n "$SELECT_FEATURES" ] && [ -n "${FEATURES:-}" ]; then
    echo "FEATURES and SELECT_FEATURES exclude each other" >&2; exit 1
fi
# The `--features` arguments of a feature set.
set_args() {
    case "$1" in
        history) ;;
        contract) echo "--features $CONTRACT_FEATURES" ;;
        *) echo "unknown feature set $1 (history, contract)" >&2; return 1 ;;
    esac
}
# The runs of patterns "$@" as `pattern=path` arguments.
runs_of() {
    local p f
    for p in "$@"; do for f in "$PEER/$p"/run_*/metrics.csv; do echo "$p=$f"; done; done
}
# Train on patterns $3… with feature set $2, evaluate on pattern $1; print the best voting
# rule's F1 (the `vote:` rows' 7th column).
inner_f1() {
    local held="$1" set="$2"; shift 2
    local dir="$OUT/selection/$set-on-$held"
    mapfile -t tr < <(runs_of "$@")
    mapfile -t te < <(runs_of "$held")
    # shellcheck disable=SC2046
    "$bin" train --data "${tr[@]}" --out "$dir/models" --split by-run --seed "$SEED" \
        --sla-p95-ms "$SLA_MS" --created-at 2025-01-01T00:00:00Z $(set_args "$set") \
        ${TARGET_RECALL:+--target-recall "$TARGET_RECALL"} >"$dir.train.txt"
    "$bin" evaluate --data "${te[@]}" --models "$dir/models" --json-out "$dir/evaluation.json" \
        --plot "$dir/evaluation.svg" >"$dir.table.txt"
    awk '$1 == "vote:" && $7 > best { best = $7 } END { printf "%.3f\n", best + 0 }' "$dir.table.txt"
}
# Each model's calibration from its model card (metadata.json, fitted on the validation runs):
# method, Brier score raw and calibrated on validation, calibrated on the training patterns'
# test runs, and the validation reliability bins as `lo-hi:rows:mean predicted/observed`.
calibration() {
    command -v jq >/dev/null || { echo "(jq not found: no calibration summary)"; return; }
    echo "calibration (model card; validation runs of the training patterns)"
    for m in xgboost random_forest logistic_regression; do
        jq -r --arg m "$m" 'def r3: (. * 1000 | round) / 1000;
            .scores as $s
            | "\($m) \($s.calibration.method // "none"): Brier validation raw \($s.brier.validation_raw | r3) calibrated \($s.brier.validation | r3), test runs \($s.brier.test | r3); reliability " +
              ([$s.reliability.validation[] | "\(.lo)-\(.hi):\(.rows):\(.mean_predicted | r3)/\(.observed | r3)"] | join(" "))' \
            "$1/$m/metadata.json"
    done
}
mkdir -p "$OUT"
summary="$OUT/summary.txt"
: >"$summary"
for test_pattern in $TEST_PATTERNS; do
    train=(); test=(); train_patterns=()
    for p in $PATTERNS; do
        [ "$p" = "$test_pattern" ] && continue
        train_patterns+=("$p")
        for f in "$PEER/$p"/run_*/metrics.csv; do train+=("$p=$f"); done
    done
    for f in "$PEER/$test_pattern"/run_*/metrics.csv; do test+=("$test_pattern=$f"); done
    out="$OUT/$test_pattern"
    chosen=()
    selection=""
    if [ -n "$SELECT_FEATURES" ]; then
        mkdir -p "$OUT/selection"
        best_set=""; best_f1=-1; selection="feature list chosen on [${train_patterns[*]}] only (mean over held-out training patterns of the best voting rule's F1):"
        for set in $FEATURE_SETS; do
            total=0
            for held in "${train_patterns[@]}"; do
                rest=(); for p in "${train_patterns[@]}"; do [ "$p" != "$held" ] && rest+=("$p"); done
                f1=$(inner_f1 "$held" "$set" "${rest[@]}")
                total=$(awk -v a="$total" -v b="$f1" 'BEGIN { print a + b }')
            done
            mean=$(awk -v t="$total" -v n="${#train_patterns[@]}" 'BEGIN { printf "%.3f", t / n }')
            selection="$selection $set $mean"
            if awk -v m="$mean" -v b="$best_f1" 'BEGIN { exit !(m > b) }'; then
                best_set="$set"; best_f1="$mean"
            fi
        done
        selection="$selection -> $best_set"
        echo "== $selection"
        read -r -a chosen <<<"$(set_args "$best_set")"
    fi
    echo "== train on [${train_patterns[*]}] (${#train[@]} runs), split by run; SLA p95 ${SLA_MS} ms"
    "$bin" train --data "${train[@]}" --out "$out/models" --split by-run --seed "$SEED" \
        --sla-p95-ms "$SLA_MS" --created-at 2025-01-01T00:00:00Z "${extra[@]}" "${chosen[@]}"
    # (The weighted rule's weights and threshold: those `train` chose on the validation runs,
    # read by `evaluate` from the models' metadata.)
    echo
    echo "== evaluate on [$test_pattern] (${#test[@]} runs, never trained on)"
    "$bin" evaluate --data "${test[@]}" --models "$out/models" \
        --json-out "$out/evaluation.json" --plot "$out/evaluation.svg" | tee "$out/table.txt"
    echo
    {
        echo "== test on $test_pattern (trained on ${train_patterns[*]})"
        [ -n "$selection" ] && echo "$selection"
        # The table's header and its model / rule lines, columns as `evaluate` prints them.
        sed -n '2,$p' "$out/table.txt" | grep -v '^wrote '
        echo
        calibration "$out/models"
        echo
    } >>"$summary"
done
echo "== summary (threshold chosen on validation runs; test pattern held out)"
cat "$summary"
