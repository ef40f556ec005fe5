# syntax=docker/dockerfile:1
# hookd producer-api — build from the repository root:
#   docker build -f deploy/docker/producer-api.Dockerfile -t hookd/producer-api:0.1.0 .
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
COPY producer-api/ producer-api/
RUN make -j"$(nproc)" bin/producer-api \
 && strip --strip-debug bin/producer-api \
 && ./bin/producer-api --version

FROM debian:12-slim AS runtime
ARG DEBIAN_FRONTEND=noninteractive
# libhiredis0.14 librdkafka1 libjansson4 libcurl4 libssl3: what `ldd bin/producer-api` needs
# (their own dependencies come with them); curl only for the HEALTHCHECK.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libhiredis0.14 librdkafka1 libjansson4 libcurl4 libssl3 ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 hookd \
 && useradd --system --uid 10001 --gid hookd --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin hookd
COPY --from=build /src/bin/producer-api /usr/local/bin/producer-api
# numeric so that Kubernetes runAsNonRoot can verify it
USER 10001:10001
ENV LISTEN_ADDR=0.0.0.0:8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD curl -fsS -o /dev/null http://127.0.0.1:8080/healthz || exit 1
# SIGTERM: stop accepting, finish requests in flight within SHUTDOWN_GRACE, exit 0
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/producer-api"]
