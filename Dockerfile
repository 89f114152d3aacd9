# One image for every service: `autoscaler <command>` (aggregator, inference, scaler,
# demo-service, tail, …). The shipped models are inside (/app/models), with XGBoost 3.2.0's
# libxgboost.so; the process runs as the unprivileged user `autoscaler` (uid 10001).
#
# For users (builds Rust inside Docker, on the official images):
#   docker build -t autoscaler:latest .
#
# Without compiling inside Docker (what the tests do: scripts/build-images.sh): copy a binary
# and libxgboost.so built on the host into deploy/.prebuilt/ and build the `prebuilt` target;
# RUNTIME_IMAGE replaces the base image (e.g. one made from Debian's packages by
# scripts/build-images.sh when no registry is reachable):
#   docker build --target prebuilt --build-arg RUNTIME_IMAGE=autoscaler-local/debian:bookworm .
#
# The `prebuilt` stage comes before the Rust stage on purpose: Docker's classic builder runs
# every stage up to the target, so `--target prebuilt` never starts the Rust build.

ARG RUST_IMAGE=rust:1-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# --- what every variant runs on ----------------------------------------------------------------
FROM ${RUNTIME_IMAGE} AS runtime-base
# libssl3 (rdkafka's TLS), libgomp1 (OpenMP, linked by the XGBoost bindings) and ca-certificates
# (TLS to brokers and Prometheus): already in the local base image, so this touches the network
# only on the official slim image.
RUN if ! dpkg -s libssl3 libgomp1 ca-certificates >/dev/null 2>&1; then \
        apt-get update && \
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libssl3 libgomp1 ca-certificates && \
        rm -rf /var/lib/apt/lists/*; \
    fi && \
    (getent passwd autoscaler >/dev/null || useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin autoscaler) && \
    mkdir -p /app/output /app/state && chown autoscaler /app/output /app/state
WORKDIR /app
COPY models /app/models
COPY deploy/aggregator.toml /app/aggregator.toml
ENV MODELS_DIR=/app/models \
    METRICS_CSV=/app/output/sockshop_metrics.csv \
    PREDICTIONS_DIR=/app/output \
    RUST_LOG=warn \
    HEALTH_PORT=9100
# Liveness: an HTTP GET /health on the service's own port (the metrics listener of the pipeline
# services, `--metrics-listen 0.0.0.0:9100` in the compose file; the demo service's port for the
# workload, HEALTH_PORT=8080). bash's /dev/tcp: no curl in the image.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${HEALTH_PORT} && printf 'GET /health HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
USER autoscaler
ENTRYPOINT ["/usr/local/bin/autoscaler"]
CMD ["--help"]

# --- binary built outside Docker (tests, CI) -----------------------------------------------------
FROM runtime-base AS prebuilt
USER root
COPY deploy/.prebuilt/lib/ /usr/local/lib/
COPY deploy/.prebuilt/autoscaler /usr/local/bin/autoscaler
RUN ldconfig && /usr/local/bin/autoscaler --version
USER autoscaler

# --- build on the official Rust image (users) ---------------------------------------------------
FROM ${RUST_IMAGE} AS build
RUN apt-get update && \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        build-essential cmake clang libclang-dev libssl-dev pkg-config python3 python3-pip ca-certificates && \
    rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY scripts/install-xgboost.sh scripts/install-xgboost.sh
RUN bash scripts/install-xgboost.sh
COPY . .
ENV XGBOOST_LIB_DIR=/usr/local/lib CARGO_TARGET_DIR=/src/target
RUN cargo build --release --locked -p autoscaler-cli && \
    mkdir -p /out/lib && cp target/release/autoscaler /out/autoscaler && \
    cp -a /usr/local/lib/libxgboost.so /usr/local/lib/libgomp-*.so* /out/lib/

# --- the image (default target) ------------------------------------------------------------------
FROM runtime-base AS runtime
USER root
COPY --from=build /out/lib/ /usr/local/lib/
COPY --from=build /out/autoscaler /usr/local/bin/autoscaler
RUN ldconfig && /usr/local/bin/autoscaler --version
USER autoscaler
