#!/usr/bin/env bash
# A Python venv with Locust (PyPI, pinned) for the load experiments in load-testing/.
# Idempotent, and fast when the venv is already there with the pinned version.
# Venv: ${AUTOSCALER_LOCUST_VENV:-$HOME/.cache/autoscaler/venv-locust}.
# Prints the venv's python as its last line.
set -euo pipefail
LOCUST_VERSION="2.47.0"
CACHE="${AUTOSCALER_CACHE:-$HOME/.cache/autoscaler}"
VENV="${AUTOSCALER_LOCUST_VENV:-$CACHE/venv-locust}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

have_locust() {
    [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c \
        "import sys, locust; sys.exit(locust.__version__ != '$LOCUST_VERSION')" 2>/dev/null
}

if ! have_locust; then
    mkdir -p "$(dirname "$VENV")"
    python3 -m venv "$VENV" >&2 || {
        echo "locust-venv: python3 -m venv failed; installing python3-venv" >&2
        rm -rf "$VENV"
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >&2 || {
            $SUDO apt-get update -qq >&2
            DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >&2
        }
        python3 -m venv "$VENV" >&2
    }
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "locust==$LOCUST_VERSION" >&2
    have_locust || { echo "locust-venv: locust $LOCUST_VERSION does not import in $VENV" >&2; exit 1; }
fi
echo "$VENV/bin/python"
