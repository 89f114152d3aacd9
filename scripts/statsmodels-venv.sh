#!/usr/bin/env bash
# A Python venv with statsmodels (PyPI, pinned with numpy/scipy/pandas) for the SARIMAX reference
# test in crates/forecast (tests/statsmodels.rs runs scripts/sarimax_reference.py with it).
# Idempotent, and fast when the venv is already there with the pinned versions.
# Venv: ${AUTOSCALER_STATSMODELS_VENV:-$HOME/.cache/autoscaler/venv-statsmodels}.
# Prints the venv's python as its last line.
set -euo pipefail
STATSMODELS_VERSION="0.14.4"
NUMPY_VERSION="2.2.6"
SCIPY_VERSION="1.15.3"
PANDAS_VERSION="2.2.3"
CACHE="${AUTOSCALER_CACHE:-$HOME/.cache/autoscaler}"
VENV="${AUTOSCALER_STATSMODELS_VENV:-$CACHE/venv-statsmodels}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

have_statsmodels() {
    [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c \
        "import sys, statsmodels, numpy; sys.exit(statsmodels.__version__ != '$STATSMODELS_VERSION' or numpy.__version__ != '$NUMPY_VERSION')" 2>/dev/null
}

if ! have_statsmodels; then
    mkdir -p "$(dirname "$VENV")"
    python3 -m venv "$VENV" >&2 || {
        echo "statsmodels-venv: python3 -m venv failed; installing python3-venv" >&2
        rm -rf "$VENV"
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >&2 || {
            $SUDO apt-get update -qq >&2
            DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >&2
        }
        python3 -m venv "$VENV" >&2
    }
    "$VENV/bin/pip" install --quiet --disable-pip-version-check \
        "numpy==$NUMPY_VERSION" "scipy==$SCIPY_VERSION" "pandas==$PANDAS_VERSION" \
        "statsmodels==$STATSMODELS_VERSION" >&2
    have_statsmodels || { echo "statsmodels-venv: statsmodels $STATSMODELS_VERSION does not import in $VENV" >&2; exit 1; }
fi
echo "$VENV/bin/python"
