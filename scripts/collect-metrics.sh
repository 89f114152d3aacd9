#!/usr/bin/env bash
# Development mode end to end: load the demo stack with a Locust pattern while the aggregator
# writes the metrics CSV that `autoscaler train` learns from.
#
#   scripts/collect-metrics.sh PATTERN MINUTES [PEAK_USERS]
#       PATTERN: ramp | constant | spike | step (load-testing/README.md)
#
#   COLLECT_CSV        (output/sockshop_metrics.csv; rows are appended)
#   POLL_INTERVAL_SEC  (30)
#   STACK_SERVICES, STACK_BASE_PORT, PROMETHEUS_PORT: as scripts/stack-up.sh (started here
#   unless a stack is already up, and then stopped at the end)
#
# Then: autoscaler train --data PATTERN=output/sockshop_metrics.csv --sla-p95-ms MS
set -euo pipefail
cd "$(dirname "$0")/.."
PATTERN="${1:?usage: scripts/collect-metrics.sh ramp|constant|spike|step MINUTES [PEAK_USERS]}"
MINUTES="${2:?minutes}"
PEAK="${3:-20}"
CSV="${COLLECT_CSV:-output/sockshop_metrics.csv}"
INTERVAL="${POLL_INTERVAL_SEC:-30}"
RUN_DIR="${AUTOSCALER_STACK_DIR:-/tmp/autoscaler-stack}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${AUTOSCALER_CACHE:-$HOME/.cache/autoscaler}/target}"
BIN="${AUTOSCALER_BIN:-$CARGO_TARGET_DIR/release/autoscaler}"
say() { echo "collect-metrics: $*" >&2; }

started=""
if [ ! -f "$RUN_DIR/pids" ]; then
    PROM_URL="$(bash scripts/stack-up.sh | tail -n 1)"
    started=1
else
    PROM_URL="http://127.0.0.1:${PROMETHEUS_PORT:-9090}"
fi
[ -x "$BIN" ] || cargo build --release --quiet
SERVICES="$(sed -n "s/^  - job_name: '\(.*\)'/\1/p" "$RUN_DIR/prometheus.yml" | paste -sd, -)"
HOST="http://127.0.0.1:${STACK_BASE_PORT:-8081}"

"$BIN" aggregator --source prometheus --preset demo --services "$SERVICES" \
    --prometheus-url "$PROM_URL" --mode development --poll-interval-sec "$INTERVAL" \
    --csv-path "$CSV" 2>"$RUN_DIR/aggregator.log" &
agg=$!
cleanup() {
    kill "$agg" 2>/dev/null || true
    wait "$agg" 2>/dev/null || true
    if [ -n "$started" ]; then bash scripts/stack-down.sh; fi
}
trap cleanup EXIT
say "aggregator polling $SERVICES every ${INTERVAL}s into $CSV; load: $PATTERN for $MINUTES min on $HOST"
python3 load-testing/run_experiment.py --pattern "$PATTERN" --duration "$MINUTES" \
    --host "$HOST" --peak-users "$PEAK" >&2
sleep "$INTERVAL"   # one more poll after the load ends
say "$(($(wc -l <"$CSV") - 1)) rows in $CSV"
