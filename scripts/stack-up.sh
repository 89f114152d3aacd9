#!/usr/bin/env bash
# Start a local stack to scale for real: demo-service processes (`autoscaler demo-service`) and
# Debian's Prometheus scraping them every 5 s, all on 127.0.0.1. Prints the Prometheus URL as
# its last line; `scripts/stack-down.sh` stops what this started.
#
#   STACK_SERVICES   name:replicas:work_ms,…   (default front-end:2:3,orders:1:8)
#   STACK_BASE_PORT  first demo-service port   (default 8081; one port per replica)
#   PROMETHEUS_PORT  (default 9090)
#   AUTOSCALER_BIN   the binary (default: release build in the cached target dir, built if absent)
#
# Then, e.g.:
#   python3 load-testing/run_experiment.py --pattern ramp --duration 5 --host http://127.0.0.1:8081
#   autoscaler aggregator --source prometheus --preset demo --services front-end,orders \
#       --mode development --poll-interval-sec 30     # rows in output/sockshop_metrics.csv
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "stack-up: $*" >&2; }

SERVICES="${STACK_SERVICES:-front-end:2:3,orders:1:8}"
PORT="${STACK_BASE_PORT:-8081}"
PROM_PORT="${PROMETHEUS_PORT:-9090}"
RUN_DIR="${AUTOSCALER_STACK_DIR:-/tmp/autoscaler-stack}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${AUTOSCALER_CACHE:-$HOME/.cache/autoscaler}/target}"

command -v prometheus >/dev/null || bash scripts/install-deps.sh >&2
BIN="${AUTOSCALER_BIN:-$CARGO_TARGET_DIR/release/autoscaler}"
if [ ! -x "$BIN" ]; then
    say "building the release binary"
    cargo build --release --quiet >&2
fi
if [ -f "$RUN_DIR/pids" ]; then
    say "a stack is already recorded in $RUN_DIR; run scripts/stack-down.sh first"
    exit 1
fi
mkdir -p "$RUN_DIR"
: >"$RUN_DIR/pids"

wait_port() { # port, pid, log
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        kill -0 "$2" 2>/dev/null || { say "exited:"; tail -n 20 "$3" >&2; return 1; }
        sleep 0.1
    done
    say "nothing listens on 127.0.0.1:$1"; return 1
}

scrape="global:
  scrape_interval: 5s
  evaluation_interval: 5s
scrape_configs:
"
IFS=',' read -ra specs <<<"$SERVICES"
for spec in "${specs[@]}"; do
    IFS=':' read -r name replicas work <<<"$spec"
    targets=()
    for _ in $(seq 1 "${replicas:-1}"); do
        log="$RUN_DIR/$name-$PORT.log"
        nohup "$BIN" demo-service --listen "127.0.0.1:$PORT" --service "$name" \
            --work-ms "${work:-5}" >"$log" 2>&1 &
        echo $! >>"$RUN_DIR/pids"
        wait_port "$PORT" $! "$log"
        say "$name replica on http://127.0.0.1:$PORT"
        targets+=("'127.0.0.1:$PORT'")
        PORT=$((PORT + 1))
    done
    # The job is named after the service: the presets read process metrics by `job`.
    scrape+="  - job_name: '$name'
    static_configs:
      - targets: [$(IFS=,; echo "${targets[*]}")]
"
done
printf '%s' "$scrape" >"$RUN_DIR/prometheus.yml"
nohup prometheus --config.file="$RUN_DIR/prometheus.yml" --storage.tsdb.path="$RUN_DIR/data" \
    --web.listen-address="127.0.0.1:$PROM_PORT" >"$RUN_DIR/prometheus.log" 2>&1 &
echo $! >>"$RUN_DIR/pids"
wait_port "$PROM_PORT" $! "$RUN_DIR/prometheus.log"
say "Prometheus on http://127.0.0.1:$PROM_PORT (config $RUN_DIR/prometheus.yml)"
echo "http://127.0.0.1:$PROM_PORT"
