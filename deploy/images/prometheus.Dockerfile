# Prometheus from Debian's `prometheus` package (unpacked by scripts/build-images.sh), on the
# local Debian base; used by docker-compose.local.yml in place of prom/prometheus.
ARG BASE_IMAGE=autoscaler-local/debian:bookworm
FROM ${BASE_IMAGE}
COPY prometheus /usr/bin/prometheus
COPY promtool /usr/bin/promtool
RUN mkdir -p /prometheus /etc/prometheus && /usr/bin/prometheus --version
ENTRYPOINT ["prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
