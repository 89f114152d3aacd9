#!/usr/bin/env bash
# Stop the broker scripts/kafka-up.sh started (nothing else).
set -euo pipefail
PORT="${KAFKA_PORT:-9092}"
RUN_DIR="${AUTOSCALER_RUN_DIR:-/tmp/autoscaler-kafka-$PORT}"
if [ -f "$RUN_DIR/pid" ]; then
    pid="$(cat "$RUN_DIR/pid")"
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
        echo "kafka-down: stopped tansu (pid $pid)"
    fi
    rm -f "$RUN_DIR/pid"
else
    echo "kafka-down: nothing to stop"
fi
