#!/usr/bin/env bash
# Regenerate the Python-XGBoost interchange fixture used by
# crates/models/tests/python_interchange.rs: a small XGBClassifier trained and saved as JSON by
# Python's xgboost 3.2.0 (the version of the libxgboost the Rust side links), plus its inputs and
# Python's own predictions. The fixture is committed; this script is only needed to remake it.
#
# The venv lives outside the repository (~/.cache/autoscaler/venv, or $AUTOSCALER_VENV) and is
# created from PyPI on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${AUTOSCALER_VENV:-$HOME/.cache/autoscaler/venv}"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "xgboost-cpu==3.2.0" numpy
"$VENV/bin/python" scripts/make_python_xgboost_fixture.py crates/models/tests/fixtures/python_xgboost
