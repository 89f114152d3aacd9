#!/usr/bin/env bash
# Development mode: the aggregator writes every poll to output/sockshop_metrics.csv (training data
# for `autoscaler train`) and publishes nothing; the models and the scaler idle. Idempotent.
#   DEPLOY=stack scripts/start-development.sh    the same as a Swarm stack
set -euo pipefail
# shellcheck source=deploy-common.sh
. "$(dirname "$0")/deploy-common.sh"
start_stack development
