#!/usr/bin/env bash
# Start moto's server (PyPI `moto[server]`, a local mock of the AWS APIs) on 127.0.0.1 for the
# EC2 actuator's tests (crates/nodes/tests/ec2.rs), unless one this script started is still
# running. Idempotent: the venv is made once, and a running server is reused.
# Prints the endpoint (http://127.0.0.1:PORT) as its last line; `scripts/moto-down.sh` stops it.
#
#   MOTO_PORT            port to listen on (default: a free port chosen here)
#   AUTOSCALER_CACHE     cache directory (default ~/.cache/autoscaler); venv in venv-moto
set -euo pipefail
MOTO_VERSION="5.2.5"
CACHE="${AUTOSCALER_CACHE:-$HOME/.cache/autoscaler}"
VENV="$CACHE/venv-moto"
RUN_DIR="${AUTOSCALER_MOTO_RUN_DIR:-/tmp/autoscaler-moto}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
say() { echo "moto-up: $*" >&2; }

have_moto() {
    [ -x "$VENV/bin/moto_server" ] && "$VENV/bin/python" -c \
        "import sys, moto, flask; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null
}

if ! have_moto; then
    say "installing moto[server]==$MOTO_VERSION into $VENV"
    mkdir -p "$CACHE"
    python3 -m venv "$VENV" >&2 || {
        say "python3 -m venv failed; installing python3-venv"
        rm -rf "$VENV"
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >&2 || {
            $SUDO apt-get update -qq >&2
            DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >&2
        }
        python3 -m venv "$VENV" >&2
    }
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" >&2
    have_moto || { say "moto $MOTO_VERSION does not import in $VENV"; exit 1; }
fi

# 200 when moto answers on the port (a DescribeRegions call with moto's fixed test credentials).
answers() {
    "$VENV/bin/python" - "$1" <<'PY' 2>/dev/null
import sys, urllib.request
try:
    urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/moto-api/", timeout=1).read()
except Exception:
    sys.exit(1)
PY
}

mkdir -p "$RUN_DIR"
if [ -f "$RUN_DIR/pid" ] && [ -f "$RUN_DIR/port" ] && kill -0 "$(cat "$RUN_DIR/pid")" 2>/dev/null \
    && answers "$(cat "$RUN_DIR/port")"; then
    say "moto_server already running (pid $(cat "$RUN_DIR/pid"))"
else
    PORT="${MOTO_PORT:-$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
    say "starting moto_server on 127.0.0.1:$PORT (logs: $RUN_DIR/moto.log)"
    nohup "$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" >"$RUN_DIR/moto.log" 2>&1 &
    echo $! >"$RUN_DIR/pid"
    echo "$PORT" >"$RUN_DIR/port"
    for _ in $(seq 1 150); do
        answers "$PORT" && break
        if ! kill -0 "$(cat "$RUN_DIR/pid")" 2>/dev/null; then
            say "moto_server exited:"; tail -20 "$RUN_DIR/moto.log" >&2; exit 1
        fi
        sleep 0.2
    done
    answers "$PORT" || { say "moto_server does not answer on $PORT"; exit 1; }
fi
echo "http://127.0.0.1:$(cat "$RUN_DIR/port")"
