#!/usr/bin/env bash
# The models benchmark: the same model files predicted by the native engine, by libxgboost's C
# API (smartcore for the forest) and by Python's xgboost / scikit-learn, one row at a time and in
# batches of 1,000, for the shipped models and 200-tree versions (XGBoost depth 6, forest depth
# 8, trained once into ~/.cache/autoscaler/bench-models). Prints a table (µs per row, the ratio
# to Python, and callgrind instructions per row when valgrind is installed).
#
#   usage: scripts/bench-models.sh [--json FILE] [--rows N] [--seconds S] [--no-python] [--no-callgrind]
#
# Installs what it needs on a fresh Debian machine: libxgboost (scripts/install-xgboost.sh),
# valgrind (apt), and a venv with pinned xgboost-cpu and scikit-learn
# (scripts/bench-models-venv.sh). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
args=()
python=1
callgrind=1
while [ $# -gt 0 ]; do
    case "$1" in
        --no-python) python=0 ;;
        --no-callgrind) callgrind=0 ;;
        --json | --rows | --seconds) args+=("$1" "$2"); shift ;;
        *) echo "bench-models: unknown argument $1" >&2; exit 64 ;;
    esac
    shift
done
say() { echo "bench-models: $*" >&2; }
[ -f /usr/local/lib/libxgboost.so ] || bash scripts/install-xgboost.sh
if [ "$callgrind" = 1 ] && ! command -v valgrind >/dev/null; then
    say "installing valgrind (callgrind instruction counts)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind
fi
if [ "$python" = 1 ]; then
    py="$(bash scripts/bench-models-venv.sh | tail -n 1)"
    args+=(--python "$py")
fi
[ "$callgrind" = 1 ] && args+=(--callgrind)
# One build profile (`dev`, optimised: see Cargo.toml) and the tests' target directory.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${AUTOSCALER_CACHE:-$HOME/.cache/autoscaler}/target}"
cargo build --quiet -p autoscaler-cli
bin="$CARGO_TARGET_DIR/debug/autoscaler"
exec "$bin" bench-models "${args[@]}"
