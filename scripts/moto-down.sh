#!/usr/bin/env bash
# Stop the moto_server that scripts/moto-up.sh started (by its recorded pid). Keeps the venv.
set -euo pipefail
RUN_DIR="${AUTOSCALER_MOTO_RUN_DIR:-/tmp/autoscaler-moto}"
if [ -f "$RUN_DIR/pid" ]; then
    pid="$(cat "$RUN_DIR/pid")"
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        echo "moto-down: stopped moto_server (pid $pid)" >&2
    fi
    rm -f "$RUN_DIR/pid" "$RUN_DIR/port"
fi
