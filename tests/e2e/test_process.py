"""End-to-end: command line, health endpoints, metrics, and behaviour without Kafka."""

import json
import os
import re
import shutil
import subprocess
import time
import zlib

from conftest import BIN, PARTITIONS, http, readyz_check, wait_until
from support import memcheck
from support.services import RedisServer, free_port


def test_version_and_help():
    out = subprocess.run([str(BIN / "dispatcher"), "--version"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0 and out.stdout.strip() == "dispatcher (hookd) 0.1.0"
    out = subprocess.run([str(BIN / "dispatcher"), "--help"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0
    for var in ("KAFKA_BROKERS", "KAFKA_GROUP", "TOPIC_PREFIX", "REDIS_URL", "RECEIVER_CA_FILE", "DELIVERY_TIMEOUT",
                "MAX_IN_FLIGHT", "SHUTDOWN_GRACE", "ALLOW_PRIVATE_TARGETS", "METRICS_ADDR", "LOG_LEVEL",
                "LOG_ATTEMPTS", "HANDOVER_TIMEOUT", "KAFKA_<PROPERTY>"):
        assert var in out.stdout


def test_invalid_configuration_exits_2(tmp_path):
    for bad in ({"MAX_IN_FLIGHT": "0"}, {"DELIVERY_TIMEOUT": "soon"}, {"REDIS_URL": "http://x"},
                {"RECEIVER_CA_FILE": str(tmp_path / "missing.pem")}, {"LOG_ATTEMPTS": "some"},
                {"REDIS_URL": "rediss://127.0.0.1:1/0", "REDIS_CA_FILE": str(tmp_path / "missing.pem")},
                {"SUBSCRIBER_CACHE_MAX_ENTRIES": "0"}, {"HANDOVER_TIMEOUT": "soon"}):
        env = dict(os.environ, METRICS_ADDR=f"127.0.0.1:{free_port()}", **bad)
        out = subprocess.run([str(BIN / "dispatcher")], env=env, capture_output=True, text=True, timeout=20)
        assert out.returncode == 2, (bad, out.stderr)
        assert '"level":"error"' in out.stderr


def test_health_ready_and_metrics(stack):
    rcv = stack.receiver()
    org = stack.new_org()
    stack.api.create_webhook(org, rcv.url("/m"), "user.created")
    d = stack.dispatcher().wait_ready()
    assert http("GET", d.url("/healthz"))[0] == 200
    status, body = http("GET", d.url("/readyz"))
    assert status == 200 and body == {"status": "ok", "checks": {"kafka": "ok", "redis": "ok"}}
    assert http("GET", d.url("/nope"))[0] == 404
    stack.api.post_events([{"type": "user.created", "organization_id": org, "data": {"id": 1}}])
    assert rcv.wait_for(lambda reqs: len(reqs) == 1, 20)
    wait_until(lambda: d.metrics().get("hookd_dispatcher_deliveries_in_flight") == 0, 10, what="idle")
    with __import__("urllib.request").request.urlopen(d.url("/metrics"), timeout=5) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = resp.read().decode()
    assert "# TYPE hookd_dispatcher_attempt_duration_seconds histogram" in text
    assert re.search(r'hookd_dispatcher_attempt_duration_seconds_bucket\{le="\+Inf"\} 1\n', text)
    m = d.metrics()
    assert m["hookd_dispatcher_assigned_partitions"] == stack.partitions_total
    # consumer lag per assigned partition (from librdkafka statistics, every second)
    wait_until(lambda: len([k for k in d.metrics() if k.startswith("hookd_dispatcher_consumer_lag{")])
               == stack.partitions_total, 10, what="lag series")
    lag = {k: v for k, v in d.metrics().items() if k.startswith("hookd_dispatcher_consumer_lag{")}
    assert all(v == 0 for v in lag.values()), lag
    assert f'hookd_dispatcher_consumer_lag{{topic="{stack.api.prefix}user.created",partition="0"}}' in lag


def test_a_killed_dispatcher_leaves_no_ca_bundle_behind(stack, tmp_path):
    """RECEIVER_CA_FILE's bundle (the system CAs, then the extra ones) is kept in memory and read by libcurl as
    /proc/self/fd/N: a SIGKILL (an OOM kill, a liveness probe's) leaves no file in /tmp or $TMPDIR. The build before
    wrote /tmp/hookd-ca-XXXXXX and removed it only at a clean exit, so each kill left one (~220 KiB), and a pod's
    /tmp emptyDir (16 MiB in deploy/) filled after some 75 kills of a crash loop."""
    rcv = stack.receiver()
    org = stack.new_org()
    stack.api.create_webhook(org, rcv.url("/ca"), "user.created")

    def bundle_files():  # mkstemp's hookd-ca-XXXXXX (the e2e CA directories are hookd-ca-XXXXXXXX)
        return {n for n in os.listdir("/tmp") if re.fullmatch(r"hookd-ca-[A-Za-z0-9]{6}", n)}

    before = bundle_files()
    own_tmp = tmp_path / "tmp"
    own_tmp.mkdir()
    d = stack.dispatcher(TMPDIR=str(own_tmp)).wait_ready()
    stack.api.post_events([{"type": "user.created", "organization_id": org, "data": {"id": 7}}])
    assert rcv.wait_for(lambda reqs: len(reqs) == 1, 20)  # the receiver's test CA was trusted through the bundle
    d.proc.kill9()
    assert bundle_files() - before == set()
    assert [n for n in os.listdir(own_tmp) if n.startswith("hookd-")] == []  # (valgrind keeps its vgdb pipes here)


def test_without_kafka_not_ready_no_spin_and_clean_exit(redis_server, tmp_path):
    port = free_port()
    env = dict(os.environ, KAFKA_BROKERS=f"127.0.0.1:{free_port()}", REDIS_URL=redis_server.url,
               METRICS_ADDR=f"127.0.0.1:{port}", KAFKA_GROUP="hookd-nokafka")
    log = open(tmp_path / "d.log", "wb")
    p = subprocess.Popen([str(BIN / "dispatcher")], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _status(url + "/healthz") == 200, 10, what="healthz")
        time.sleep(1.5)
        status, body = http("GET", url + "/readyz")
        assert status == 503 and body == {"status": "unavailable", "checks": {"kafka": "unreachable", "redis": "ok"}}
        cpu_before = _cpu_seconds(p.pid)
        time.sleep(3)
        assert _cpu_seconds(p.pid) - cpu_before < 0.5, "busy loop while Kafka is down"
        p.terminate()
        assert p.wait(timeout=30) == 0
    finally:
        if p.poll() is None:
            p.kill()
        log.close()


def test_without_the_redis_password_not_ready_and_says_why(tmp_path):
    """A Redis that wants a password REDIS_URL does not give: the dispatcher runs, not ready, and /readyz says
    "authentication required" (its NOAUTH answer), as a Kafka check names a refused login; given up by the server
    (requirepass cleared), Redis reads "ok" again."""
    redis = RedisServer(tmpdir=str(tmp_path / "redis")).start()
    metrics = f"127.0.0.1:{free_port()}"
    env = dict(os.environ, REDIS_URL=redis.url, METRICS_ADDR=metrics, KAFKA_BROKERS="127.0.0.1:1")
    redis.cli("CONFIG", "SET", "requirepass", "s3cret")
    with open(tmp_path / "dispatcher.log", "wb") as out:
        p = subprocess.Popen(memcheck.wrap([str(BIN / "dispatcher")], "dispatcher-noauth", str(tmp_path)), env=env,
                             stdout=out, stderr=subprocess.STDOUT)
    try:
        # 503 throughout: Kafka is a closed port
        wait_until(lambda: readyz_check(metrics) == (503, "authentication required"), memcheck.scaled(20),
                   what="/readyz naming the missing password")
        subprocess.run(["redis-cli", "-p", str(redis.port), "--no-auth-warning", "-a", "s3cret", "CONFIG", "SET",
                        "requirepass", ""], check=True, capture_output=True, timeout=10)
        wait_until(lambda: readyz_check(metrics) == (503, "ok"), memcheck.scaled(20), what="/readyz redis ok again")
    finally:
        p.terminate()
        p.wait(timeout=memcheck.scaled(30))
        redis.stop()


def test_ops_port_refuses_bad_requests_with_json_and_keeps_serving(redis_server, tmp_path):
    """The dispatcher's /healthz, /readyz and /metrics port runs the same HTTP server as producer-api: unknown
    paths, other methods and malformed HTTP get a JSON 4xx, HEAD gets headers only, and a crowd of idle
    connections past its cap of 64 is shed without stopping it (no Kafka needed: the port starts first)."""
    import socket
    port = free_port()
    env = dict(os.environ, KAFKA_BROKERS=f"127.0.0.1:{free_port()}", REDIS_URL=redis_server.url,
               METRICS_ADDR=f"localhost:{port}", KAFKA_GROUP="hookd-ops-port")
    log = open(tmp_path / "d.log", "wb")
    p = subprocess.Popen(memcheck.wrap([str(BIN / "dispatcher")], name="ops-port", logdir=str(tmp_path)), env=env,
                         stdout=log, stderr=subprocess.STDOUT)

    def raw(request: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            c.sendall(request)
            data = b""
            while True:
                chunk = c.recv(65536)
                if not chunk:
                    return data
                data += chunk

    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _status(url + "/healthz") == 200, memcheck.scaled(10), what="healthz")
        assert http("GET", url + "/nope") == (404, {"message": "not found"})
        answer = raw(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 405 ") and b"\r\nAllow: GET, HEAD" in head, answer
        assert json.loads(body) == {"message": "method not allowed"}
        answer = raw(b"HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"\r\n\r\n"), answer
        assert re.search(rb"\r\nContent-Length: 15\r\n", answer), answer  # {"status":"ok"}, not sent
        for bad in (b"GET /metrics HTTP/1.1\r\nHost : x\r\n\r\n",  # space before the colon
                    b"GET /metrics HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                    b"\x00\x01garbage\r\n\r\n"):
            answer = raw(bad)
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 400 ") and b"Connection: close" in head, (bad, answer)
            assert "message" in json.loads(body), (bad, answer)
        crowd = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(100)]
        try:
            shed = 0
            for c in crowd:
                c.settimeout(0.2)
                try:
                    shed += c.recv(1) == b""
                except socket.timeout:
                    pass
            assert 30 <= shed <= 40, shed  # 64 kept (a few may still be on their way in), the rest closed
        finally:
            for c in crowd:
                c.close()
        wait_until(lambda: _status(url + "/healthz") == 200, memcheck.scaled(10), what="healthz after the crowd")
        with __import__("urllib.request").request.urlopen(url + "/metrics", timeout=5) as resp:
            assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            assert b"hookd_dispatcher_kafka_up 0" in resp.read()
        p.terminate()
        assert p.wait(timeout=memcheck.scaled(30)) == 0
        log.flush()
        assert memcheck.problems("ops-port", p.returncode, (tmp_path / "d.log").read_text(errors="replace"), p.pid,
                                 str(tmp_path)) == []
    finally:
        if p.poll() is None:
            p.kill()
        log.close()


def _status(url):
    try:
        return http("GET", url, timeout=2)[0]
    except OSError:
        return None


def _cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_fetch_kicks_under_backpressure_lose_and_repeat_nothing(stack, kafka_broker):
    """librdkafka 2.0 stops fetching once its local queue is full and looks again only about once a second; the
    dispatcher wakes it when the queue runs dry after a full queue's worth, by seeking one partition to the offset
    after the last message it served, and looks again 20 ms after any dry queue (consumer.c kick_fetcher,
    recheck_dry; the throughput and the stalls they remove are measured by make bench and
    tests/bench/dispatch_probe.py, not here). With a 32 KiB queue, at most 10 deliveries in flight and 600 events
    of about 1 KiB from two organizations on the topic's two partitions, each event in its own record batch, the
    queue fills while the dispatcher waits for room, and kicks happen many times, on one partition or the other:
    every event must still reach the receiver exactly once and be consumed exactly once."""
    rcv = stack.receiver()
    # two organizations whose keys land on different partitions (kcat partitions by CRC-32 of the key, like
    # librdkafka's default consistent_random partitioner)
    orgs = [stack.new_org()]
    while len(orgs) < 2:
        org = stack.new_org()
        if zlib.crc32(str(org).encode()) % PARTITIONS != zlib.crc32(str(orgs[0]).encode()) % PARTITIONS:
            orgs.append(org)
    for org in orgs:
        stack.api.create_webhook(org, rcv.url(f"/kick/{org}"), "project.created")
    n = 600
    pad = "x" * 900
    ids = [f"evt-kick-{i}" for i in range(n)]
    payload = b"".join(f"{orgs[i % 2]}\x1f".encode() + json.dumps(
        {"id": eid, "type": "project.created", "organization_id": orgs[i % 2],
         "occurred_at": "2026-11-29T01:02:03.456Z", "data": {"id": i, "pad": pad}}).encode() + b"\x1e"
        for i, eid in enumerate(ids))
    kcat = shutil.which("kcat") or shutil.which("kafkacat")
    assert kcat, "kcat is not installed (run: make deps)"
    # one message per record batch, uncompressed: a 32 KiB queue then really holds about 30 events
    subprocess.run([kcat, "-b", kafka_broker.bootstrap, "-P", "-t", stack.api.prefix + "project.created",
                    "-D", "\x1e", "-K", "\x1f", "-X", "batch.num.messages=1", "-X", "compression.codec=none"],
                   input=payload, capture_output=True, timeout=120, check=True)
    d = stack.dispatcher(KAFKA_QUEUED_MAX_MESSAGES_KBYTES="32", MAX_IN_FLIGHT="10").wait_ready()
    assert rcv.wait_for(lambda reqs: len({r.headers.get("webhook-id") for r in reqs}) >= n, memcheck.scaled(120)), \
        d.proc.tail()
    time.sleep(1.0)  # a repeat would show up by now
    got = [r.headers["webhook-id"] for r in rcv.requests()]
    assert sorted(got) == sorted(ids)  # each exactly once, none skipped
    by_path = {r.path for r in rcv.requests()}
    assert by_path == {f"/kick/{org}" for org in orgs}
    m = d.metrics()
    assert m["hookd_dispatcher_events_consumed_total"] == n
    assert m["hookd_dispatcher_fetch_kicks_total"] > 0
