#!/usr/bin/env bash
# Start a Kafka-protocol broker on 127.0.0.1 for tests and local use, unless
# KAFKA_BOOTSTRAP_SERVERS already names one. Prints the bootstrap address as its last line.
#
# Apache Kafka cannot be installed on these machines, so this builds `tansu` (a Kafka-compatible
# broker from crates.io, version pinned) once, with every storage engine the tests use (`dynostore`
# for memory, `libsql` for the SQLite file that survives a broker restart), and caches it outside
# the clone (the build takes 20-30 minutes on 2 cores). `scripts/kafka-down.sh` stops what this started.
#
#   KAFKA_PORT (9092)        port to listen on
#   AUTOSCALER_CACHE         cache directory (default ~/.cache/autoscaler)
set -euo pipefail
cd "$(dirname "$0")/.."

TANSU_VERSION="0.6.0"
TANSU_FEATURES="dynostore,libsql"
CACHE="${AUTOSCALER_CACHE:-$HOME/.cache/autoscaler}"
ROOT="$CACHE/tansu-$TANSU_VERSION-${TANSU_FEATURES//,/-}"
TANSU="$ROOT/bin/tansu"
PORT="${KAFKA_PORT:-9092}"
RUN_DIR="${AUTOSCALER_RUN_DIR:-/tmp/autoscaler-kafka-$PORT}"
say() { echo "kafka-up: $*" >&2; }

if [ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
    say "using the broker in KAFKA_BOOTSTRAP_SERVERS"
    echo "$KAFKA_BOOTSTRAP_SERVERS"
    exit 0
fi

if [ ! -x "$TANSU" ]; then
    say "building tansu $TANSU_VERSION (features: $TANSU_FEATURES) into $ROOT; this takes 20-30 min once"
    mkdir -p "$CACHE"
    # A cached target dir lets an interrupted build resume.
    CARGO_TARGET_DIR="$CACHE/tansu-target" cargo install --quiet --locked \
        tansu --version "=$TANSU_VERSION" --features "$TANSU_FEATURES" --root "$ROOT" >&2
    rm -rf "$CACHE/tansu-target"
fi

mkdir -p "$RUN_DIR"
if [ -f "$RUN_DIR/pid" ] && kill -0 "$(cat "$RUN_DIR/pid")" 2>/dev/null; then
    say "tansu already running (pid $(cat "$RUN_DIR/pid"))"
else
    say "starting tansu on 127.0.0.1:$PORT (logs: $RUN_DIR/tansu.log)"
    nohup "$TANSU" broker \
        --listener-url "tcp://127.0.0.1:$PORT" \
        --advertised-listener-url "tcp://127.0.0.1:$PORT" \
        --storage-engine "memory://tansu/" >"$RUN_DIR/tansu.log" 2>&1 &
    echo $! >"$RUN_DIR/pid"
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
        if ! kill -0 "$(cat "$RUN_DIR/pid")" 2>/dev/null; then
            say "tansu exited:"; tail -20 "$RUN_DIR/tansu.log" >&2; exit 1
        fi
        sleep 0.1
    done
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null || { say "tansu does not listen on $PORT"; exit 1; }
fi
echo "127.0.0.1:$PORT"
