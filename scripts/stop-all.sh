#!/usr/bin/env bash
# Stop and remove what start-production.sh / start-development.sh started — the compose project
# and the Swarm stack, whichever runs — and wait until none of their containers is left.
# Volumes (Prometheus data, the scaler's state) are kept; STOP_VOLUMES=1 removes them too.
# Idempotent: with nothing running it says so.
set -euo pipefail
# shellcheck source=deploy-common.sh
. "$(dirname "$0")/deploy-common.sh"
need_docker
stopped=0
if compose_running || [ -n "$(docker ps -aq --filter "label=com.docker.compose.project=$STACK")" ]; then
    if [ "${STOP_VOLUMES:-0}" = 1 ]; then dc down --remove-orphans --volumes; else dc down --remove-orphans; fi
    echo "stopped: compose project \`$STACK\`"
    stopped=1
fi
if stack_running; then
    docker stack rm "$STACK"
    stopped=1
fi
# Swarm removes tasks asynchronously: wait (bounded) for the last container and network.
for _ in $(seq 1 60); do
    left="$(docker ps -aq --filter "label=com.docker.stack.namespace=$STACK")"
    nets="$(docker network ls -q --filter "label=com.docker.stack.namespace=$STACK")"
    [ -z "$left$nets" ] && break
    sleep 1
done
if [ -n "$(docker ps -aq --filter "label=com.docker.stack.namespace=$STACK")" ]; then
    echo "stop-all: containers of stack \`$STACK\` still there after 60 s:" >&2
    docker ps -a --filter "label=com.docker.stack.namespace=$STACK" >&2
    exit 1
fi
if [ "$stopped" = 1 ]; then
    [ "${STOP_VOLUMES:-0}" = 1 ] && docker volume ls -q --filter "label=com.docker.stack.namespace=$STACK" | xargs -r docker volume rm >/dev/null
    echo "stopped: nothing of \`$STACK\` is running"
else
    echo "stop-all: nothing of \`$STACK\` was running"
fi
