#!/usr/bin/env bash
# The deployment, tested for real on this machine (no registry, no Grafana, no Apache Kafka):
#
#  1. docker-compose.ml.yml (alone and with docker-compose.local.yml) is validated by Debian's
#     `docker-compose config`, by `docker compose config` when the CLI has v2, and by
#     `docker stack config` (CLI ≥ 23) — else a `docker stack deploy` + `rm` of a scratch stack;
#  2. the images are built from Debian's packages (scripts/build-images.sh; cached);
#  3. production, as a Swarm stack (scripts/start-production.sh, DEPLOY=stack, the local-image
#     override; on a kernel without IPVS, as here, also docker-compose.no-ipvs.yml): the
#     aggregator polls the stack's Prometheus, the three models vote, the scaler prints decision
#     blocks and scales the labelled workload `front-end` on the Swarm when a bounded load pushes
#     its p95 over the SLA; the prediction logs fill; every Grafana panel query returns data
#     from the stack's Prometheus. The load is 16 closed-loop HTTP clients (bash, /dev/tcp) in a
#     one-off Swarm service on the stack's own network, addressing the workload's tasks
#     (`tasks.<stack>_front-end`): it stays inside the stack's network namespaces and needs no routing
#     mesh (without IPVS, Swarm's ingress and VIPs carry no traffic);
#  4. development, with Debian's docker-compose (scripts/start-development.sh): rows appear in
#     sockshop_metrics.csv on the host;
#  5. scripts/stop-all.sh leaves nothing running.
#
# Output of the run (CSV, prediction logs, the scaler's log, a decision block) goes to
# $AUTOSCALER_OUTPUT (default /tmp/autoscaler-compose-test). Prints the timings at the end.
#   CI=true: a missing Docker daemon fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
# The stack runs its own broker (`kafka:9092` inside its network). The compose file reads
# STACK_KAFKA_BOOTSTRAP, not the KAFKA_BOOTSTRAP_SERVERS that scripts/test.sh exports for the
# cargo tests (127.0.0.1 inside a container is the container).
unset STACK_KAFKA_BOOTSTRAP
say() { echo "compose-test: $*" >&2; }
t_start=$(date +%s)
declare -A timing
lap() { timing[$1]=$(($(date +%s) - $2)); }

if ! docker info >/dev/null 2>&1; then
    if [ "${CI:-}" = true ] || [ -n "${REQUIRE_INTEGRATION:-}" ]; then
        say "FAIL: no Docker daemon (scripts/swarm-up.sh)"; exit 1
    fi
    say "SKIPPED: no Docker daemon (scripts/swarm-up.sh starts one)"; exit 0
fi
command -v docker-compose >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null
}

export AUTOSCALER_OUTPUT="${AUTOSCALER_OUTPUT:-/tmp/autoscaler-compose-test}"
export AUTOSCALER_IMAGE="autoscaler:local" AUTOSCALER_COMPOSE_OVERRIDE="docker-compose.local.yml"
# The Swarm's routing mesh needs IPVS; without it (VMs and sandboxes like this one) the stack runs
# with DNS round-robin and host-mode ports (docker-compose.no-ipvs.yml).
STACK_OVERRIDE="docker-compose.local.yml"
if [ ! -e /proc/net/ip_vs ] && ! modprobe -q ip_vs 2>/dev/null; then
    STACK_OVERRIDE="docker-compose.local.yml docker-compose.no-ipvs.yml"
    say "no IPVS in this kernel: the stack adds docker-compose.no-ipvs.yml"
fi
export AUTOSCALER_STACK="${AUTOSCALER_STACK:-autoscaler}"
# Fast enough for a test: 5 s polls, short cooldowns, a low SLA and a small cap.
export POLL_INTERVAL_SEC=5 COOLDOWN_UP_SEC=30 COOLDOWN_DOWN_SEC=600 STABILIZATION_SEC=600
export SLA_P95_MS=100 WORKLOAD_WORK_MS=20 WORKLOAD_MAX_REPLICAS=3 RUST_LOG=warn
# Host ports away from the defaults, so a Prometheus or demo of someone else on this host
# does not collide with the test's.
export PROMETHEUS_PORT="${PROMETHEUS_PORT:-19090}" GRAFANA_PORT="${GRAFANA_PORT:-13000}" \
    WORKLOAD_PORT="${WORKLOAD_PORT:-18080}"
STACK="$AUTOSCALER_STACK"
SCALER="${STACK}_authoritative-scaler"
WORKLOAD="${STACK}_front-end"
PROM="http://127.0.0.1:$PROMETHEUS_PORT"
# Every stop removes the volumes too: the stack and the compose project share volume names
# (<project>_prometheus-data), and a phase must not read the last one's Prometheus series.
export STOP_VOLUMES=1
rm -rf "$AUTOSCALER_OUTPUT" && mkdir -p "$AUTOSCALER_OUTPUT"
LOAD="${STACK}-load"
stop_load() { docker service rm "$LOAD" >/dev/null 2>&1 || true; }
cleanup() { stop_load; scripts/stop-all.sh >/dev/null 2>&1 || true; }
trap cleanup EXIT

# --- 1. validation --------------------------------------------------------------------------------
t=$(date +%s)
for files in "-f docker-compose.ml.yml" "-f docker-compose.ml.yml -f docker-compose.local.yml" \
    "-f docker-compose.ml.yml -f docker-compose.local.yml -f docker-compose.no-ipvs.yml"; do
    # shellcheck disable=SC2086
    docker-compose $files config -q
    say "docker-compose $(docker-compose version --short) config: $files ok"
    if docker compose version >/dev/null 2>&1; then
        # shellcheck disable=SC2086
        docker compose $files config -q
        say "docker compose (v2) config: $files ok"
    fi
done
if docker stack config --help >/dev/null 2>&1; then
    docker stack config -c docker-compose.ml.yml >/dev/null
    docker stack config -c docker-compose.ml.yml -c docker-compose.local.yml -c docker-compose.no-ipvs.yml >/dev/null
    say "docker stack config ($(docker version --format '{{.Client.Version}}')): ok"
else
    say "docker stack config unavailable (CLI < 23): deploying a scratch stack instead"
    docker stack deploy -c docker-compose.ml.yml -c docker-compose.local.yml "${STACK}-validate" >/dev/null
    docker stack rm "${STACK}-validate" >/dev/null
    say "docker stack deploy + rm of ${STACK}-validate: ok"
fi
lap validate "$t"

# --- 2. images ------------------------------------------------------------------------------------
t=$(date +%s)
scripts/build-images.sh
lap images "$t"
app_size="$(docker image inspect --format '{{.Size}}' "$AUTOSCALER_IMAGE")"

# --- 3. production on the Swarm -----------------------------------------------------------------
scripts/stop-all.sh >/dev/null
t=$(date +%s)
DEPLOY=stack AUTOSCALER_COMPOSE_OVERRIDE="$STACK_OVERRIDE" scripts/start-production.sh
wait_for() { # description, timeout s, command…
    local what="$1" limit="$2"; shift 2
    local t0; t0=$(date +%s)
    until "$@" >/dev/null 2>&1; do
        if [ $(($(date +%s) - t0)) -ge "$limit" ]; then
            say "FAIL: $what within $limit s"
            docker stack ps --no-trunc "$STACK" >&2 || true
            docker service logs --tail 30 "$SCALER" >&2 || true
            return 1
        fi
        sleep 2
    done
    say "$what ($(($(date +%s) - t0)) s)"
}
all_running() {
    local want running
    want=$(docker stack services "$STACK" --format '{{.Name}}' | grep -vc grafana)
    running=$(docker stack ps "$STACK" --filter desired-state=running --format '{{.Name}} {{.CurrentState}}' \
        | grep -v grafana | grep -c ' Running')
    [ "$running" -ge "$want" ]
}
wait_for "every service running" 180 all_running
wait_for "Prometheus answers" 60 curl -sf "$PROM/-/ready"
lap stack_up "$t"
decided() { docker service logs "$SCALER" 2>/dev/null | grep -q "^.*decision #\|SCALING DECISION"; }
wait_for "the scaler decides" 180 decided
lap first_decision "$t"

# A bounded load inside the stack's network: 16 closed-loop clients for at most 240 s, removed
# as soon as the workload is scaled (capacity ~50 rps at 20 ms of CPU a request on one worker).
# bash's /dev/tcp from the autoscaler image itself (busybox's static wget cannot resolve names).
docker service create --detach --quiet --name "$LOAD" --network "${STACK}_default" \
    --restart-condition none --no-healthcheck --entrypoint bash --env "TARGET=tasks.$WORKLOAD" \
    "$AUTOSCALER_IMAGE" -c '
        end=$(( $(date +%s) + 240 ))
        for i in $(seq 1 16); do
            ( while [ "$(date +%s)" -lt "$end" ]; do
                { exec 3<>"/dev/tcp/$TARGET/8080" &&
                  printf "GET /catalogue HTTP/1.0\r\nHost: front-end\r\n\r\n" >&3 &&
                  timeout 5 cat <&3 >/dev/null; exec 3<&-; } 2>/dev/null || sleep 0.2
              done ) &
        done
        wait' >/dev/null
t=$(date +%s)
scaled() { [ "$(docker service inspect "$WORKLOAD" --format '{{.Spec.Mode.Replicated.Replicas}}')" -gt 1 ]; }
ok_scaled=0
wait_for "the scaler scales $WORKLOAD above 1 replica" 240 scaled && ok_scaled=1
lap scale_up "$t"
stop_load
docker service logs --raw "$SCALER" >"$AUTOSCALER_OUTPUT/authoritative-scaler.log" 2>&1 || true
# The first block that changes something, as `docker service logs` shows it.
awk '/^SCALING DECISION #/ {b=1; print prev} b {print} b && r && /^=+$/ {exit} b && /Replicas:/ {r=1} {prev=$0}' \
    "$AUTOSCALER_OUTPUT/authoritative-scaler.log" >"$AUTOSCALER_OUTPUT/decision-block.txt" || true
[ "$ok_scaled" = 1 ] || { say "FAIL: no scale-up"; exit 1; }
grep -q "SCALING DECISION" "$AUTOSCALER_OUTPUT/authoritative-scaler.log" || {
    say "FAIL: no decision block in the scaler's log"; exit 1; }
cat "$AUTOSCALER_OUTPUT/decision-block.txt" >&2

# Rows of a CSV, and rows with a value in column $2 (by header name).
csv_rows() {
    python3 - "$1" "$2" <<'PY' 2>/dev/null || echo "0 0"
import csv, sys
with open(sys.argv[1], newline="") as f:
    rows = list(csv.DictReader(f))
print(len(rows), sum(1 for r in rows if r.get(sys.argv[2])))
PY
}
for m in xgboost random_forest logistic_regression; do
    f="$AUTOSCALER_OUTPUT/predictions_$m.csv"
    read -r rows voted <<<"$(csv_rows "$f" prediction)"
    [ "$voted" -gt 0 ] || { say "FAIL: $f: $rows rows, none with a prediction"; exit 1; }
    say "predictions_$m.csv: $rows rows, $voted with a prediction (the rest abstained, reason given)"
done
# Let Prometheus scrape the latest counters, then check every dashboard query.
sleep 6
python3 scripts/check-dashboards.py --prometheus "$PROM" >&2

# --- 4. development with Debian's docker-compose -------------------------------------------------
scripts/stop-all.sh
t=$(date +%s)
COMPOSE=docker-compose DEPLOY=compose scripts/start-development.sh
csv="$AUTOSCALER_OUTPUT/sockshop_metrics.csv"
# Rows that measured something (the first polls, before Prometheus has two scrapes, have none).
rows() { local n m; read -r n m <<<"$(csv_rows "$csv" request_rate_rps)"; [ "$m" -ge "$1" ]; }
# Some traffic so the rows measure something.
( end=$(( $(date +%s) + 150 )); while [ "$(date +%s)" -lt "$end" ]; do
    curl -s -o /dev/null --max-time 5 "http://127.0.0.1:$WORKLOAD_PORT/" || sleep 0.5; sleep 0.05; done ) &
dev_load=$!
wait_for "3 rows with a request rate in sockshop_metrics.csv (development mode, docker-compose)" 150 rows 3
kill "$dev_load" 2>/dev/null || true
lap development "$t"
grep -v ',front-end,,' "$csv" | head -n 3 >&2

# --- 5. stop ----------------------------------------------------------------------------------------
t=$(date +%s)
scripts/stop-all.sh
left="$(docker ps -aq --filter "label=com.docker.compose.project=$STACK") $(docker ps -aq --filter "label=com.docker.stack.namespace=$STACK")"
[ -z "${left// /}" ] || { say "FAIL: containers left: $left"; exit 1; }
lap stop "$t"
trap - EXIT

say "image $AUTOSCALER_IMAGE: $(awk -v s="$app_size" 'BEGIN {printf "%.1f MB", s / 1e6}')"
for k in validate images stack_up first_decision scale_up development stop; do
    say "time $k: ${timing[$k]} s"
done
say "ok in $(($(date +%s) - t_start)) s (output in $AUTOSCALER_OUTPUT)"
