#!/usr/bin/env bash
# The main job: the whole pipeline in one process (no broker, no cluster) over two days of the
# NASA-HTTP trace. Extra arguments go to `autoscaler demo` (e.g. --strategy weighted --seed 7).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh >/dev/null
exec cargo run --release --quiet -- demo "$@"
