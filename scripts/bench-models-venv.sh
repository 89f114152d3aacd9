#!/usr/bin/env bash
# The Python side of scripts/bench-models.sh: a venv with Python's xgboost and scikit-learn at
# pinned versions, outside the repository (~/.cache/autoscaler/venv-bench-models, or
# $AUTOSCALER_BENCH_VENV). Idempotent: a venv whose pins are already installed is left alone.
# Prints the venv's python on its last line.
#
# xgboost-cpu 3.2.0 is the version of the libxgboost.so the Rust side links
# (scripts/install-xgboost.sh), so both read the model files alike.
set -euo pipefail
VENV="${AUTOSCALER_BENCH_VENV:-$HOME/.cache/autoscaler/venv-bench-models}"
PINS=("xgboost-cpu==3.2.0" "scikit-learn==1.6.1" "numpy==2.2.6" "scipy==1.15.3")
STAMP="$VENV/.pins"
say() { echo "bench-models-venv: $*" >&2; }
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "${PINS[*]}" ] && [ -x "$VENV/bin/python" ]; then
    say "venv ready: $VENV"
else
    if ! python3 -m venv --help >/dev/null 2>&1; then
        say "python3-venv missing: apt-get install"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
    fi
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    say "installing ${PINS[*]} into $VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PINS[@]}"
    echo "${PINS[*]}" >"$STAMP"
fi
echo "$VENV/bin/python"
