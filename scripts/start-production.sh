#!/usr/bin/env bash
# Production mode: the aggregator publishes feature vectors, the three models vote, the
# authoritative scaler decides and acts. Idempotent: a second run updates what runs in place.
#   DEPLOY=stack scripts/start-production.sh     the same as a Swarm stack (docker stack deploy)
# Settings: see scripts/deploy-common.sh and docs/deploy.md.
set -euo pipefail
# shellcheck source=deploy-common.sh
. "$(dirname "$0")/deploy-common.sh"
start_stack production
