#!/usr/bin/env bash
# A Python venv with confluent-kafka (PyPI), an independent Kafka client for the tests.
# Idempotent. Prints the venv's python as its last line.
set -euo pipefail
CACHE="${AUTOSCALER_CACHE:-$HOME/.cache/autoscaler}"
VENV="$CACHE/venv-kafka"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import confluent_kafka" 2>/dev/null; then
    python3 -m venv "$VENV" >&2 || {
        echo "python-kafka-venv: python3 -m venv failed; installing python3-venv" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2
        python3 -m venv "$VENV" >&2
    }
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "confluent-kafka==2.16.1" >&2
fi
echo "$VENV/bin/python"
