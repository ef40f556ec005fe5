#!/bin/sh
# tests/support/kafka.sh — owned by the test infrastructure.
#
# A real single-node Apache Kafka 3.9.1 broker in KRaft mode (broker+controller in one JVM), run
# from the Maven Central jars listed in tests/support/kafka/pom.xml. No Docker, no ZooKeeper.
#
#   sh tests/support/kafka.sh fetch
#       copy the broker jars into $KAFKA_CACHE_DIR/lib (default <repo>/.cache/kafka/lib) with
#       Maven; skipped when the kafka jar is already there for the current pom.xml (checksum
#       stamp lib/.pom.sha256), so a changed pom refetches.
#   sh tests/support/kafka.sh start DATA_DIR PORT CONTROLLER_PORT
#       write DATA_DIR/server.properties and DATA_DIR/log4j.properties, format DATA_DIR/logs once
#       (a later start on the same DATA_DIR keeps topics and offsets), start the broker in the
#       background (pid in DATA_DIR/kafka.pid) and wait until it is ready (at most
#       $KAFKA_START_TIMEOUT seconds, default 60). On failure: exit 1 and print the log tail.
#       Bootstrap address: 127.0.0.1:PORT (PLAINTEXT).
#   sh tests/support/kafka.sh stop DATA_DIR
#       SIGTERM, wait up to $KAFKA_STOP_TIMEOUT seconds (default 30), then SIGKILL.
#   sh tests/support/kafka.sh run-class CLASS ARGS...
#       run a Kafka main class (e.g. kafka.admin.TopicCommand) with the broker classpath; used by
#       tests/support/services.py when kcat is not installed.
#
# Environment: BROKER_JVM_OPTS, the broker JVM's heap and GC options (default: -Xms256m -Xmx512m
# -XX:+UseSerialGC). A secured listener besides the PLAINTEXT one, as managed Kafka services have
# (tests/e2e/test_kafka_security.py): BROKER_SASL_SSL_PORT, its port (SASL_SSL, advertised as
# localhost:PORT); BROKER_SSL_PEM, a PEM file with its unencrypted PKCS#8 private key and certificate
# chain; BROKER_SASL_USERS, "NAME:PASSWORD ..." accepted by PLAIN and by SCRAM-SHA-256/512 (SCRAM
# credentials are written when DATA_DIR is formatted, at its first start). BROKER_SSL_PORT: an SSL
# listener (advertised as localhost:PORT, the same BROKER_SSL_PEM) that requires a client certificate
# issued by the CA certificates in BROKER_SSL_CLIENT_CA (mutual TLS, Strimzi's "tls" authentication).
# BROKER_SUPER_USERS: "User:NAME;User:NAME ...": turns on Kafka's ACL authorizer (StandardAuthorizer)
# with these principals as super users; every other principal needs ACLs (run-class
# kafka.admin.AclCommand), none means refused. The PLAINTEXT and controller listeners' principal,
# User:ANONYMOUS, is always one of them (the broker's own requests and the tests' tools use it).
# Logs: DATA_DIR/kafka.log (log4j, WARN and up, plus the "Kafka Server started" line) and
# DATA_DIR/kafka.out (JVM stdout/stderr).
set -eu

SCRIPT_DIR=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$SCRIPT_DIR/../.." && pwd)
KAFKA_VERSION=3.9.1
CACHE=${KAFKA_CACHE_DIR:-$REPO/.cache/kafka}
LIB=$CACHE/lib
KAFKA_JAR=$LIB/kafka_2.13-$KAFKA_VERSION.jar
JAVA=${JAVA:-java}

die() { echo "kafka.sh: $*" >&2; exit 1; }

usage() {
    echo "usage: $0 fetch | start DATA_DIR PORT CONTROLLER_PORT | stop DATA_DIR | run-class CLASS ARGS..." >&2
    exit 2
}

pom_sum() { sha256sum "$SCRIPT_DIR/kafka/pom.xml" | cut -d' ' -f1; }

# have_jars: 0 when lib/ holds the kafka jar and was fetched for the current pom.xml.
have_jars() {
    [ -f "$KAFKA_JAR" ] && [ "$(cat "$LIB/.pom.sha256" 2>/dev/null)" = "$(pom_sum)" ]
}

fetch() {
    if have_jars; then
        return 0
    fi
    command -v mvn >/dev/null 2>&1 || die "mvn not found (run: make deps)"
    mkdir -p "$CACHE"
    tmp="$CACHE/lib.tmp.$$"
    rm -rf "$tmp"
    echo "kafka.sh: fetching Kafka $KAFKA_VERSION jars from Maven Central into $LIB" >&2
    # Maven's output goes to a file and is shown only on failure.
    (cd "$SCRIPT_DIR/kafka" &&
        mvn -q -B -Dstyle.color=never dependency:copy-dependencies -DincludeScope=runtime \
            -DoutputDirectory="$tmp" </dev/null >"$CACHE/mvn.log" 2>&1) ||
        { cat "$CACHE/mvn.log" >&2; rm -rf "$tmp"; die "maven fetch failed"; }
    [ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ] || { rm -rf "$tmp"; die "maven did not produce the kafka jar"; }
    pom_sum >"$tmp/.pom.sha256"
    # Publish atomically so a concurrent or interrupted fetch never leaves a half-filled lib/.
    rm -rf "$LIB"
    mv "$tmp" "$LIB"
}

# is_running PIDFILE: 0 when the pid in PIDFILE is a live kafka.Kafka JVM.
is_running() {
    [ -f "$1" ] || return 1
    pid=$(cat "$1" 2>/dev/null) || return 1
    [ -n "$pid" ] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    # Guard against a recycled pid: it must be our broker.
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka' || return 1
    return 0
}

# port_open PORT: 0 when 127.0.0.1:PORT accepts a TCP connection.
port_open() {
    /usr/bin/python3 -c '
import socket, sys
s = socket.socket(); s.settimeout(0.5)
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
' "$1" 2>/dev/null
}

random_cluster_id() {
    # 16 random bytes, URL-safe base64 without padding = 22 chars, the format Kafka's Uuid uses.
    # Like Kafka's Uuid.randomUuid(), never start with '-' (the tool would take it for an option).
    while :; do
        id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | cut -c1-22)
        case $id in -*) ;; *) echo "$id"; return 0 ;; esac
    done
}

show_logs() {
    for f in "$1/kafka.log" "$1/kafka.out"; do
        if [ -s "$f" ]; then
            echo "---- tail $f" >&2
            tail -n 40 "$f" >&2
        fi
    done
}

# add_tls_listener PROTOCOL PORT: one more listener in start()'s lists, on 127.0.0.1 and advertised as localhost
# (the name BROKER_SSL_PEM's certificate carries)
add_tls_listener() {
    [ -r "${BROKER_SSL_PEM:-}" ] || die "BROKER_$1_PORT needs BROKER_SSL_PEM (a readable PEM file)"
    listeners="$listeners,$1://127.0.0.1:$2"
    advertised="$advertised,$1://localhost:$2"
    protocols="$protocols,$1:$1"
}

start() {
    [ $# -eq 3 ] || usage
    data=$1 port=$2 cport=$3
    have_jars || fetch
    mkdir -p "$data"
    data=$(cd "$data" && pwd)
    pidfile=$data/kafka.pid
    if is_running "$pidfile"; then
        echo "kafka.sh: already running (pid $(cat "$pidfile")) in $data" >&2
        return 0
    fi
    rm -f "$pidfile"

    listeners="PLAINTEXT://127.0.0.1:$port"
    advertised="PLAINTEXT://127.0.0.1:$port"
    protocols="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
    plain_users=""
    scram_args=""
    if [ -n "${BROKER_SSL_PORT:-}" ]; then
        [ -r "${BROKER_SSL_CLIENT_CA:-}" ] || die "BROKER_SSL_PORT needs BROKER_SSL_CLIENT_CA (a readable PEM file)"
        add_tls_listener SSL "$BROKER_SSL_PORT"
    fi
    if [ -n "${BROKER_SASL_SSL_PORT:-}" ]; then
        [ -n "${BROKER_SASL_USERS:-}" ] || die "BROKER_SASL_SSL_PORT needs BROKER_SASL_USERS"
        add_tls_listener SASL_SSL "$BROKER_SASL_SSL_PORT"
        for user in $BROKER_SASL_USERS; do
            name=${user%%:*} password=${user#*:}
            plain_users="$plain_users user_$name=\"$password\""
            scram_args="$scram_args SCRAM-SHA-256=[name=$name,password=$password]"
            scram_args="$scram_args SCRAM-SHA-512=[name=$name,password=$password]"
        done
    fi

    cat >"$data/server.properties" <<EOF
# written by tests/support/kafka.sh
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=$listeners,CONTROLLER://127.0.0.1:$cport
advertised.listeners=$advertised
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=$protocols
log.dirs=$data/logs
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
group.initial.rebalance.delay.ms=0
# After a SIGKILL the restarted broker is refused (DUPLICATE_BROKER_REGISTRATION) until the old
# session expires: 4 s instead of the default 9 s.
broker.session.timeout.ms=4000
broker.heartbeat.interval.ms=1000
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
log.retention.hours=24
EOF
    if [ -n "$plain_users" ]; then
        cat >>"$data/server.properties" <<EOF
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required$plain_users;
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location=$BROKER_SSL_PEM
EOF
    fi
    if [ -n "${BROKER_SSL_PORT:-}" ]; then
        cat >>"$data/server.properties" <<EOF
listener.name.ssl.ssl.keystore.type=PEM
listener.name.ssl.ssl.keystore.location=$BROKER_SSL_PEM
listener.name.ssl.ssl.truststore.type=PEM
listener.name.ssl.ssl.truststore.location=$BROKER_SSL_CLIENT_CA
listener.name.ssl.ssl.client.auth=required
EOF
    fi

    if [ -n "${BROKER_SUPER_USERS:-}" ]; then
        cat >>"$data/server.properties" <<EOF
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:ANONYMOUS;$BROKER_SUPER_USERS
allow.everyone.if.no.acl.found=false
EOF
    fi

    cat >"$data/log4j.properties" <<EOF
# written by tests/support/kafka.sh: WARN and up to kafka.log, plus the startup line.
log4j.rootLogger=WARN, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=$data/kafka.log
log4j.appender.file.Append=true
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaRaftServer=INFO
EOF

    jvm_log="-Dlog4j.configuration=file:$data/log4j.properties"
    cp="$LIB/*"

    if [ ! -f "$data/logs/meta.properties" ]; then
        id=$(random_cluster_id)
        set --
        for credential in $scram_args; do
            set -- "$@" --add-scram "$credential"
        done
        "$JAVA" -Xmx256m -XX:+UseSerialGC "$jvm_log" -cp "$cp" kafka.tools.StorageTool \
            format -t "$id" -c "$data/server.properties" "$@" >"$data/format.out" 2>&1 </dev/null ||
            { cat "$data/format.out" >&2; die "storage format failed in $data"; }
    fi

    # Remember where the startup line must appear after this start (the log is appended to).
    : >>"$data/kafka.log"
    base=$(wc -l <"$data/kafka.log")

    # stdin from /dev/null and output to a file: the JVM must not hold the caller's pipes open.
    # Heap and GC: $BROKER_JVM_OPTS (not KAFKA_-prefixed: hookd passes KAFKA_* variables to librdkafka). The
    # default is light, for test suites on 2 cores; tests/bench uses what Kafka's kafka-server-start.sh ships.
    # shellcheck disable=SC2086 # word splitting of the options is intended
    "$JAVA" ${BROKER_JVM_OPTS:--Xms256m -Xmx512m -XX:+UseSerialGC} -Djava.awt.headless=true "$jvm_log" \
        -cp "$cp" kafka.Kafka "$data/server.properties" \
        >>"$data/kafka.out" 2>&1 </dev/null &
    echo $! >"$pidfile"

    start_timeout=${KAFKA_START_TIMEOUT:-60}
    start_s=$(date +%s)
    open_since=""
    while :; do
        now=$(date +%s)
        if tail -n +"$((base + 1))" "$data/kafka.log" | grep -q 'Kafka Server started'; then
            echo "kafka.sh: broker ready on 127.0.0.1:$port after $((now - start_s))s (pid $(cat "$pidfile"))" >&2
            return 0
        fi
        # kill -0 only: right after the fork the child may not have exec'd java yet.
        if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
            show_logs "$data"
            rm -f "$pidfile"
            die "broker exited during startup"
        fi
        # Fallback: the port has been accepting connections for 10 s but the line never came
        # (e.g. a different logging setup); treat the broker as up.
        if port_open "$port"; then
            [ -n "$open_since" ] || open_since=$now
            if [ $((now - open_since)) -ge 10 ]; then
                echo "kafka.sh: port $port open (no startup line), assuming ready" >&2
                return 0
            fi
        fi
        if [ $((now - start_s)) -ge "$start_timeout" ]; then
            show_logs "$data"
            stop "$data" || true
            die "broker not ready within ${start_timeout}s"
        fi
        sleep 0.2
    done
}

stop() {
    [ $# -eq 1 ] || usage
    pidfile=$1/kafka.pid
    if ! is_running "$pidfile"; then
        rm -f "$pidfile"
        return 0
    fi
    pid=$(cat "$pidfile")
    kill -TERM "$pid" 2>/dev/null || true
    stop_timeout=${KAFKA_STOP_TIMEOUT:-30}
    i=0
    while kill -0 "$pid" 2>/dev/null; do
        if [ "$i" -ge $((stop_timeout * 5)) ]; then
            echo "kafka.sh: broker $pid did not stop in ${stop_timeout}s, SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.2
            break
        fi
        sleep 0.2
        i=$((i + 1))
    done
    rm -f "$pidfile"
}

run_class() {
    [ $# -ge 1 ] || usage
    have_jars || fetch
    cls=$1
    shift
    # Client tools log only errors, to stderr.
    tools_log4j=$CACHE/tools-log4j.properties
    if [ ! -f "$tools_log4j" ]; then
        printf '%s\n' 'log4j.rootLogger=ERROR, stderr' \
            'log4j.appender.stderr=org.apache.log4j.ConsoleAppender' \
            'log4j.appender.stderr.Target=System.err' \
            'log4j.appender.stderr.layout=org.apache.log4j.PatternLayout' \
            'log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n' >"$tools_log4j"
    fi
    exec "$JAVA" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
        -Dlog4j.configuration="file:$tools_log4j" \
        -cp "$LIB/*" "$cls" "$@"
}

[ $# -ge 1 ] || usage
cmd=$1
shift
case $cmd in
    fetch) fetch ;;
    start) start "$@" ;;
    stop) stop "$@" ;;
    run-class) run_class "$@" ;;
    *) usage ;;
esac
