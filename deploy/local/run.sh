#!/usr/bin/env bash
# deploy/local/run.sh — `make run`: the whole stack on this machine, for a newcomer.
#
# Starts, unless told otherwise: Redis (when REDIS_URL is unset; AOF on, data in .cache/run/redis), a
# single-node Kafka broker (when KAFKA_BROKERS is unset; the tests' launcher tests/support/kafka.sh),
# bin/producer-api on :8080, bin/dispatcher (metrics on :9090) and a demo HTTPS receiver on :8443 with a
# throwaway CA (trusted by the dispatcher and by producer-api's test deliveries). Creates an organization token
# and a service token and prints the curl commands to try. Ctrl-C (or SIGTERM) stops everything it started.
# API_PORT, RECEIVER_PORT, METRICS_ADDR and RUN_STATE_DIR (default .cache/run) move it aside; tests/e2e/test_make_run.py
# runs it that way.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STATE=${RUN_STATE_DIR:-$REPO/.cache/run}
BIN=${HOOKD_BIN:-$REPO/bin}
API_PORT=${API_PORT:-8080}
RECEIVER_PORT=${RECEIVER_PORT:-8443}
mkdir -p "$STATE"

pids=()
kafka_started=0
cleanup() {
    trap - INT TERM EXIT
    echo
    echo "stopping..."
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ "$kafka_started" = 1 ]; then sh "$REPO/tests/support/kafka.sh" stop "$STATE/kafka" >/dev/null || true; fi
    echo "stopped everything make run started."
}
trap cleanup INT TERM EXIT

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if [ -z "${REDIS_URL:-}" ]; then
    port=6379
    port_free $port || port=6380
    mkdir -p "$STATE/redis"
    redis-server --port "$port" --bind 127.0.0.1 --appendonly yes --dir "$STATE/redis" --save '' \
        >"$STATE/redis.log" 2>&1 &
    pids+=($!)
    export REDIS_URL="redis://127.0.0.1:$port/0"
    for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
    echo "redis:        $REDIS_URL (log $STATE/redis.log)"
fi

if [ -z "${KAFKA_BROKERS:-}" ]; then
    sh "$REPO/tests/support/kafka.sh" fetch
    port=9092
    port_free $port || port=19092
    sh "$REPO/tests/support/kafka.sh" start "$STATE/kafka" "$port" $((port + 1))
    kafka_started=1
    export KAFKA_BROKERS="127.0.0.1:$port"
    echo "kafka:        $KAFKA_BROKERS (data $STATE/kafka)"
fi

sh "$REPO/deploy/local/make-test-ca.sh" "$STATE/tls"
python3 "$REPO/deploy/local/demo_receiver.py" "$RECEIVER_PORT" "$STATE/tls/server.pem" "$STATE/tls/server.key" &
pids+=($!)

export ALLOW_PRIVATE_TARGETS=1 # local demo only: the receiver is on 127.0.0.1
export RECEIVER_CA_FILE=$STATE/tls/ca.pem # both deliver to it: the dispatcher, and producer-api's test deliveries
export TOPIC_PARTITIONS=${TOPIC_PARTITIONS:-3}
LISTEN_ADDR=127.0.0.1:$API_PORT "$BIN/producer-api" 2>"$STATE/producer-api.log" &
pids+=($!)
DISPATCHER_METRICS=${METRICS_ADDR:-127.0.0.1:9090}
if [ -x "$BIN/dispatcher" ]; then
    METRICS_ADDR=$DISPATCHER_METRICS "$BIN/dispatcher" \
        2>"$STATE/dispatcher.log" &
    pids+=($!)
fi

for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$API_PORT/readyz" >/dev/null 2>&1 && break
    sleep 0.2
done
# and the dispatcher's group joined (a few seconds): an event posted before waits for it (nothing is lost), but
# the demo receiver printing it only after that surprised
if [ -x "$BIN/dispatcher" ]; then
    for _ in $(seq 150); do
        curl -sf "http://$DISPATCHER_METRICS/readyz" >/dev/null 2>&1 && break
        sleep 0.2
    done
fi
ORG_TOKEN=$("$BIN/producer-api" token create --org 1)
SERVICE_TOKEN=$("$BIN/producer-api" token create --service)

cat <<EOT

hookd is running.  producer-api: http://127.0.0.1:$API_PORT   logs: $STATE/*.log   Ctrl-C stops everything.

organization 1 token: $ORG_TOKEN
service token:        $SERVICE_TOKEN

1. Create a webhook for organization 1 (the demo receiver prints what it gets):
   curl -s -X POST http://127.0.0.1:$API_PORT/api/v1/webhooks -H 'auth: $ORG_TOKEN' \\
        -H 'Content-Type: application/json' \\
        -d '{"url": "https://127.0.0.1:$RECEIVER_PORT/hooks", "event_type": "project.created"}'

2. Post an event (202 once Kafka has it):
   curl -s -X POST http://127.0.0.1:$API_PORT/api/v1/events -H 'Authorization: Bearer $SERVICE_TOKEN' \\
        -H 'Content-Type: application/json' \\
        -d '{"type": "project.created", "organization_id": 1, "data": {"id": 123, "name": "Apollo"}}'

3. See it arrive: the delivery is printed below by the demo receiver.
   List webhooks: curl -s http://127.0.0.1:$API_PORT/api/v1/webhooks -H 'auth: $ORG_TOKEN'
   With ID the "id" step 1 printed:
   Its delivery log: curl -s http://127.0.0.1:$API_PORT/api/v1/webhooks/ID/deliveries -H 'auth: $ORG_TOKEN'
   A test delivery:  curl -s -X POST http://127.0.0.1:$API_PORT/api/v1/webhooks/ID/test -H 'auth: $ORG_TOKEN'
EOT

wait -n "${pids[@]}" || true
