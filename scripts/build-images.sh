#!/usr/bin/env bash
# Build the images docker-compose.ml.yml runs, here, without a registry and without compiling
# Rust inside `docker build`, idempotently and cached:
#
#   autoscaler-local/debian:bookworm   a base made from Debian's packages (mmdebstrap → rootfs
#                                      tarball → `docker import`), standing in for debian:bookworm-slim;
#                                      the tarball is cached in $CACHE/images/
#   autoscaler:local                   the top-level Dockerfile's `prebuilt` target on that base, with
#                                      the binary (the tests' profile) and libxgboost.so built on the host
#   autoscaler-local/tansu:0.6.0       the tansu broker scripts/kafka-up.sh builds (for apache/kafka)
#   autoscaler-local/prometheus:bookworm   Debian's prometheus package (for prom/prometheus)
#
# docker-compose.local.yml points the compose file at these. Prints each image's size.
#   AUTOSCALER_BIN   the binary (default: $CARGO_TARGET_DIR/debug/autoscaler, the tests' profile,
#                    built or brought up to date first)
#   AUTOSCALER_CACHE cache directory (default ~/.cache/autoscaler)
#   REBUILD=1        rebuild the images even when present (the base tarball stays cached)
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "build-images: $*" >&2; }

CACHE="${AUTOSCALER_CACHE:-$HOME/.cache/autoscaler}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
BASE_IMAGE="autoscaler-local/debian:bookworm"
APP_IMAGE="${AUTOSCALER_IMAGE:-autoscaler:local}"
TANSU_IMAGE="autoscaler-local/tansu:0.6.0"
PROM_IMAGE="autoscaler-local/prometheus:bookworm"
TANSU="$CACHE/tansu-0.6.0-dynostore-libsql/bin/tansu"
# What the runtime needs beyond Debian's essential set: libssl3 (rdkafka's TLS), libgomp1
# (OpenMP), ca-certificates, passwd (useradd), libstdc++6 (libxgboost.so).
BASE_PACKAGES="libssl3,libgomp1,ca-certificates,passwd,libstdc++6"
BASE_TAR="$CACHE/images/debian-bookworm-$(echo "$BASE_PACKAGES" | md5sum | cut -c1-8).tar"

has_image() { [ "${REBUILD:-0}" != 1 ] && docker image inspect "$1" >/dev/null 2>&1; }
size() { docker image inspect --format '{{.Size}}' "$1" | awk '{printf "%.1f MB", $1 / 1e6}'; }

docker info >/dev/null 2>&1 || { say "no Docker daemon (scripts/swarm-up.sh)"; exit 1; }

# --- base --------------------------------------------------------------------------------------
if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    say "$BASE_IMAGE present"
else
    if [ ! -f "$BASE_TAR" ] || [ ! -s "$BASE_TAR" ]; then
        rm -rf "$BASE_TAR" "$BASE_TAR.tmp"
        command -v mmdebstrap >/dev/null || {
            say "apt-get install mmdebstrap"
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null
        }
        mkdir -p "$(dirname "$BASE_TAR")"
        say "mmdebstrap bookworm (variant apt + $BASE_PACKAGES) into $BASE_TAR; once, ~1-2 min"
        # Documentation, man pages and locales left out, as in Docker's slim images.
        mmdebstrap --variant=apt --format=tar --include="$BASE_PACKAGES" \
            --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
            --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
            --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
            bookworm "$BASE_TAR.tmp" >&2
        mv "$BASE_TAR.tmp" "$BASE_TAR"
    fi
    say "docker import $BASE_TAR as $BASE_IMAGE"
    docker import --change 'CMD ["bash"]' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        "$BASE_TAR" "$BASE_IMAGE" >/dev/null
fi

# --- tansu ---------------------------------------------------------------------------------------
if has_image "$TANSU_IMAGE"; then
    say "$TANSU_IMAGE present"
else
    [ -x "$TANSU" ] || bash scripts/kafka-up.sh >/dev/null   # builds tansu once (cached)
    ctx="$(mktemp -d)"
    cp "$TANSU" "$ctx/tansu"
    say "docker build $TANSU_IMAGE"
    docker build -q -f deploy/images/tansu.Dockerfile --build-arg BASE_IMAGE="$BASE_IMAGE" \
        -t "$TANSU_IMAGE" "$ctx" >/dev/null
    rm -rf "$ctx"
fi

# --- prometheus (Debian's package) --------------------------------------------------------------
if has_image "$PROM_IMAGE"; then
    say "$PROM_IMAGE present"
else
    ctx="$(mktemp -d)"
    (cd "$ctx" && apt-get download prometheus >/dev/null 2>&1) || {
        apt-get update -qq
        (cd "$ctx" && apt-get download prometheus >/dev/null)
    }
    dpkg-deb -x "$ctx"/prometheus_*.deb "$ctx/pkg"
    cp "$ctx/pkg/usr/bin/prometheus" "$ctx/pkg/usr/bin/promtool" "$ctx/"
    say "docker build $PROM_IMAGE (Debian's $(basename "$ctx"/prometheus_*.deb))"
    docker build -q -f deploy/images/prometheus.Dockerfile --build-arg BASE_IMAGE="$BASE_IMAGE" \
        -t "$PROM_IMAGE" "$ctx" >/dev/null
    rm -rf "$ctx"
fi

# --- the autoscaler image (prebuilt binary) --------------------------------------------------
# The tests' one build profile (dev, optimised): the binary scripts/test.sh has already built.
BIN="${AUTOSCALER_BIN:-$CARGO_TARGET_DIR/debug/autoscaler}"
if [ -z "${AUTOSCALER_BIN:-}" ]; then
    say "cargo build -p autoscaler-cli (the tests' profile; a no-op when built)"
    cargo build --quiet -p autoscaler-cli >&2
fi
stage="deploy/.prebuilt"
rm -rf "$stage" && mkdir -p "$stage/lib"
cp "$BIN" "$stage/autoscaler"
strip --strip-debug "$stage/autoscaler" 2>/dev/null || true
cp -L /usr/local/lib/libxgboost.so "$stage/lib/"
cp -L /usr/local/lib/libgomp-*.so* "$stage/lib/" 2>/dev/null || true
sum="$( (sha256sum "$stage/autoscaler" "$stage"/lib/*; cat Dockerfile; find models deploy/aggregator.toml -type f -print0 | sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-12)"
if has_image "$APP_IMAGE" && [ "$(docker image inspect --format '{{index .Config.Labels "autoscaler.inputs"}}' "$APP_IMAGE")" = "$sum" ]; then
    say "$APP_IMAGE present (same binary and models)"
else
    say "docker build --target prebuilt -t $APP_IMAGE (base $BASE_IMAGE)"
    docker build -q --target prebuilt --build-arg RUNTIME_IMAGE="$BASE_IMAGE" \
        --label autoscaler.inputs="$sum" -t "$APP_IMAGE" . >/dev/null
fi
rm -rf "$stage"

for i in "$BASE_IMAGE" "$APP_IMAGE" "$TANSU_IMAGE" "$PROM_IMAGE"; do
    say "$i: $(size "$i")"
done
