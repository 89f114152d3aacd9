# A Kafka-protocol broker image for the tests (no registry here, no Apache Kafka in Debian):
# the tansu binary scripts/kafka-up.sh builds, on the local Debian base.
# Built by scripts/build-images.sh; used by docker-compose.local.yml in place of apache/kafka.
ARG BASE_IMAGE=autoscaler-local/debian:bookworm
FROM ${BASE_IMAGE}
COPY tansu /usr/local/bin/tansu
RUN (getent passwd tansu >/dev/null || useradd --system --uid 10002 --home-dir /var/lib/tansu --create-home tansu) && \
    /usr/local/bin/tansu --version
USER tansu
ENTRYPOINT ["/usr/local/bin/tansu"]
CMD ["broker", "--listener-url", "tcp://0.0.0.0:9092", "--advertised-listener-url", "tcp://kafka:9092", "--storage-engine", "memory://tansu/"]
