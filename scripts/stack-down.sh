#!/usr/bin/env bash
# Stop what scripts/stack-up.sh started (SIGTERM: the demo services finish in-flight requests).
set -euo pipefail
RUN_DIR="${AUTOSCALER_STACK_DIR:-/tmp/autoscaler-stack}"
[ -f "$RUN_DIR/pids" ] || { echo "stack-down: nothing recorded in $RUN_DIR" >&2; exit 0; }
while read -r pid; do kill "$pid" 2>/dev/null || true; done <"$RUN_DIR/pids"
for _ in $(seq 1 100); do
    alive=0
    while read -r pid; do kill -0 "$pid" 2>/dev/null && alive=1; done <"$RUN_DIR/pids"
    [ "$alive" -eq 0 ] && break
    sleep 0.1
done
rm -rf "$RUN_DIR"
echo "stack-down: stopped" >&2
