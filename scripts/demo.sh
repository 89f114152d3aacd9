#!/usr/bin/env bash
# The main job: the whole pipeline in one process (no broker, no cluster) over two days of the
# NASA-HTTP trace. Extra arguments go to `autoscaler demo` (e.g. --strategy weighted --seed 7).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh >/dev/null
# One build profile for the tests and the demo (`dev`, optimised: see Cargo.toml) and one target
# dir cached outside the clone, so the test suite and the demo share every compiled artefact.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${AUTOSCALER_CACHE:-$HOME/.cache/autoscaler}/target}"
exec cargo run --quiet -- demo "$@"
