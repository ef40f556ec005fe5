# syntax=docker/dockerfile:1
# hookd dispatcher — build from the repository root:
#   docker build -f deploy/docker/dispatcher.Dockerfile -t hookd/dispatcher:0.1.0 .
# Build stage: Debian 12 with the -dev packages; runtime: debian:12-slim with only the shared libraries.

FROM debian:12 AS build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential pkg-config \
      libhiredis-dev librdkafka-dev libjansson-dev libcurl4-openssl-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile ./
COPY common/ common/
COPY dispatcher/ dispatcher/
RUN make -j"$(nproc)" bin/dispatcher \
 && strip --strip-debug bin/dispatcher \
 && ./bin/dispatcher --version

FROM debian:12-slim AS runtime
ARG DEBIAN_FRONTEND=noninteractive
# libhiredis0.14 librdkafka1 libjansson4 libcurl4 libssl3: what `ldd bin/dispatcher` needs
# (their own dependencies come with them); curl only for the HEALTHCHECK.
# ca-certificates: the system bundle receivers' TLS is verified against (RECEIVER_CA_FILE adds to it).
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libhiredis0.14 librdkafka1 libjansson4 libcurl4 libssl3 ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 hookd \
 && useradd --system --uid 10001 --gid hookd --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin hookd
COPY --from=build /src/bin/dispatcher /usr/local/bin/dispatcher
# numeric so that Kubernetes runAsNonRoot can verify it
USER 10001:10001
# /healthz, /readyz and /metrics
ENV METRICS_ADDR=0.0.0.0:9090
EXPOSE 9090
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD curl -fsS -o /dev/null http://127.0.0.1:9090/healthz || exit 1
# SIGTERM: stop consuming, finish or hand off deliveries in flight within SHUTDOWN_GRACE, commit, exit 0
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/dispatcher"]
