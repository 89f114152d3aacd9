# Shared by scripts/start-production.sh, start-development.sh, stop-all.sh and compose-test.sh
# (sourced, not run). Everything is chosen by environment variables:
#
#   DEPLOY                 compose (default) | stack   docker compose, or docker stack deploy
#   COMPOSE                the compose command (default: `docker compose` when the CLI has it,
#                          else Debian's `docker-compose`)
#   AUTOSCALER_COMPOSE_OVERRIDE   extra compose files, space-separated (e.g. the local-image
#                          override docker-compose.local.yml that the tests use)
#   AUTOSCALER_STACK       stack / compose project name (default autoscaler)
#   AUTOSCALER_IMAGE       the autoscaler image (default autoscaler:latest; built by compose)
# and the seed's settings (MODE, POLL_INTERVAL_SEC, VOTING_STRATEGY, DECISION_WINDOW_SEC, …),
# passed through to docker-compose.ml.yml.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DEPLOY="${DEPLOY:-compose}"
STACK="${AUTOSCALER_STACK:-autoscaler}"
export COMPOSE_PROJECT_NAME="$STACK"
COMPOSE_FILE_MAIN="docker-compose.ml.yml"

compose_cmd() {
    if [ -n "${COMPOSE:-}" ]; then
        echo "$COMPOSE"
    elif docker compose version >/dev/null 2>&1; then
        echo "docker compose"
    elif command -v docker-compose >/dev/null; then
        echo "docker-compose"
    else
        echo "deploy: neither \`docker compose\` nor \`docker-compose\` found (apt-get install docker-compose)" >&2
        return 1
    fi
}

# `-f` arguments for compose, `-c` for stack.
compose_files() {
    local flag="$1" f
    printf '%s %s' "$flag" "$COMPOSE_FILE_MAIN"
    for f in ${AUTOSCALER_COMPOSE_OVERRIDE:-}; do printf ' %s %s' "$flag" "$f"; done
}

dc() {
    local c
    c="$(compose_cmd)" || return 1
    # shellcheck disable=SC2046
    $c -p "$STACK" $(compose_files -f) "$@"
}

need_docker() {
    if ! docker info >/dev/null 2>&1; then
        echo "deploy: no Docker daemon answers (scripts/swarm-up.sh starts one on Debian)" >&2
        exit 1
    fi
}

stack_running() { docker stack ls --format '{{.Name}}' 2>/dev/null | grep -qx "$STACK"; }
compose_running() {
    [ -n "$(docker ps -q --filter "label=com.docker.compose.project=$STACK")" ]
}

# output/ receives the development CSV and the prediction logs from containers running as the
# image's user (uid 10001): make it writable for that user.
# AUTOSCALER_OUTPUT (default ./output) is the host directory mounted there.
prepare_output() {
    local out="${AUTOSCALER_OUTPUT:-./output}"
    mkdir -p "$out"
    if [ "$(id -u)" -eq 0 ]; then
        chown 10001 "$out" 2>/dev/null || chmod a+rwx "$out"
    else
        chmod a+rwx "$out"
    fi
}

# Start (or update in place) in MODE=$1.
start_stack() {
    local mode="$1"
    need_docker
    prepare_output
    export MODE="$mode"
    if [ "$DEPLOY" = "stack" ]; then
        if compose_running; then
            echo "deploy: the compose project \`$STACK\` is running; scripts/stop-all.sh first" >&2
            exit 1
        fi
        # Swarm service names are <stack>_<service>, and so are Prometheus's job names.
        export SERVICES="${SERVICES:-${STACK}_front-end}"
        # shellcheck disable=SC2046
        docker stack deploy --prune $(compose_files -c) "$STACK"
        echo
        echo "started: stack \`$STACK\` in $mode mode (docker stack services $STACK)"
        echo "  decisions:   docker service logs -f ${STACK}_authoritative-scaler"
    else
        if stack_running; then
            echo "deploy: the Swarm stack \`$STACK\` is running; scripts/stop-all.sh first" >&2
            exit 1
        fi
        dc up -d --remove-orphans
        echo
        echo "started: compose project \`$STACK\` in $mode mode ($(compose_cmd) -f $COMPOSE_FILE_MAIN ps)"
        echo "  decisions:   $(compose_cmd) -f $COMPOSE_FILE_MAIN logs -f authoritative-scaler"
    fi
    echo "  Prometheus:  http://127.0.0.1:${PROMETHEUS_PORT:-9090}    Grafana: http://127.0.0.1:${GRAFANA_PORT:-3000} (dashboards: Autoscaler)"
    echo "  workload:    http://127.0.0.1:${WORKLOAD_PORT:-8080}    (front-end, labelled autoscaler.enable=true)"
    if [ "$mode" = "development" ]; then
        echo "  metrics CSV: output/sockshop_metrics.csv (a row per service every \${POLL_INTERVAL_SEC:-30} s)"
    else
        echo "  predictions: output/predictions_<model>.csv"
        echo "  topics:      docs/deploy.md (kafka-console-consumer, autoscaler tail)"
    fi
    echo "  stop:        scripts/stop-all.sh"
}
