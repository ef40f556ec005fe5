"""End-to-end: Redis kept available by Sentinel, and a Redis that turns into a replica under hookd.

A real master, its replica and a redis-sentinel (tests/support/services.py, RedisSentinelSet). producer-api and
the dispatcher get REDIS_SENTINELS and REDIS_SENTINEL_MASTER, and REDIS_URL naming the first master: a client that
knew no sentinel would keep writing there after a failover, and be refused (READONLY) or find nobody."""

import json
import os
import subprocess
import time
from typing import Optional

import pytest

from conftest import BIN, Stack, http, readyz_check, wait_until
from support import memcheck
from support.services import RedisServer, RedisSentinelSet, free_port


@pytest.fixture(params=["plain"])
def sentinel_set(request, test_ca):
    s = RedisSentinelSet(tls=test_ca if request.param == "tls" else None)
    s.start()
    try:
        yield s
    finally:
        s.cleanup()


@pytest.fixture
def sentinel_stack(sentinel_set, kafka_broker, test_ca, tmp_path):
    s = Stack(sentinel_set, kafka_broker, test_ca, str(tmp_path))
    try:
        yield s
    finally:
        s.close()


def create_when_possible(s, org, url, event_type, timeout=20.0):
    """POST a webhook until it is taken: right after a failover the first tries may meet the sentinel's stale view
    (503, never anything else). Returns the webhook."""
    deadline = time.monotonic() + memcheck.scaled(timeout)
    while True:
        status, body = http("POST", s.api.url + "/api/v1/webhooks", {"url": url, "event_type": event_type},
                            token=s.api.org_token(org))
        if status == 200:
            return body
        assert status == 503 and "message" in body, (status, body)
        assert time.monotonic() < deadline, (status, body)
        time.sleep(0.2)


def deliver_one_and_replicate(s, master, rcv, org, path, event_type):
    """Creates a webhook at path, starts a dispatcher, delivers one event to it and waits until that attempt's
    delivery-log record is on master and on its replica (WAIT): replication is asynchronous, so what a master takes
    between its replica's promotion and its own demotion is lost with it (as with any Redis failover;
    min-replicas-to-write bounds that), and a test must not count on it. Returns (webhook, dispatcher, log key)."""
    hook = s.api.create_webhook(org, rcv.url(path), event_type)
    d = s.dispatcher().wait_ready()
    s.api.post_events([{"type": event_type, "organization_id": org, "data": {"id": 1}}])
    assert rcv.wait_for(lambda reqs: len(reqs) == 1, 20)
    log_key = f"hookd:deliveries:{hook['id']}"
    wait_until(lambda: master.cli("LLEN", log_key) == "1", memcheck.scaled(10), what="the first attempt's record")
    assert master.cli("WAIT", "1", "5000") == "1"
    return hook, d, log_key


def role_of(server) -> Optional[str]:
    """server's ROLE, or None while it does not answer: a master being demoted drops its clients' connections
    (redis-cli: "Connection reset by peer", seen once in clean-clone CI, 2026-12-07)."""
    try:
        return server.cli("ROLE").split()[0]
    except (subprocess.SubprocessError, OSError, IndexError):
        return None


@pytest.mark.parametrize("sentinel_set", ["plain", "tls"], indirect=True)
def test_webhooks_and_deliveries_follow_a_sentinel_failover(sentinel_stack, sentinel_set):
    """A failover (SENTINEL FAILOVER): the replica becomes master, the old master its replica. Webhooks created
    after it are written to the new master, the dispatcher reads the change there and delivers to old and new
    webhooks alike; nothing is written to the old master. With TLS (rediss://) the sentinels are asked over TLS
    too, with the same CA."""
    s = sentinel_stack
    first = sentinel_set.master()
    rcv = s.receiver()
    org = s.new_org()
    before, d, log_key = deliver_one_and_replicate(s, first, rcv, org, "/before", "project.created")

    new = sentinel_set.failover()
    assert new is not first
    wait_until(lambda: role_of(first) == "slave", 20, what="the old master demoted")
    after = create_when_possible(s, org, rcv.url("/after"), "project.created")
    assert new.cli("HEXISTS", f"hookd:subs:{org}:project.created", str(after["id"])) == "1"
    wait_until(lambda: d.metrics().get("hookd_dispatcher_subscription_changes_total", 0) >= 1, memcheck.scaled(15),
               what="the change read on the new master")
    s.api.post_events([{"type": "project.created", "organization_id": org, "data": {"id": 2}}])
    assert rcv.wait_for(lambda reqs: sorted(r.path for r in reqs) == ["/after", "/before", "/before"], 20), \
        d.proc.tail()
    status, body = http("GET", f"{s.api.url}/api/v1/webhooks/{before['id']}", token=s.api.org_token(org))
    assert status == 200 and body["url"].endswith("/before")
    # the dispatcher's attempts reached the delivery log on the new master too
    wait_until(lambda: new.cli("LLEN", log_key) == "2", memcheck.scaled(10), what="the delivery log's records")
    found = [line for line in d.proc.log_lines() if line.get("msg") == "redis master found by the sentinels"]
    assert found and found[-1]["port"] == new.port, d.proc.tail()


def test_a_killed_master_is_replaced_and_hookd_carries_on(sentinel_stack, sentinel_set):
    """The master dies (SIGKILL). The sentinel sees it down after 1 s and promotes the replica; meanwhile the API
    answers 503 for what needs Redis, and a cached organization's events are still delivered. Then webhooks are
    created on the new master and get their events."""
    s = sentinel_stack
    old = sentinel_set.master()
    rcv = s.receiver()
    org = s.new_org()
    s.api.create_webhook(org, rcv.url("/kept"), "user.updated")
    d = s.dispatcher().wait_ready()
    s.api.post_events([{"type": "user.updated", "organization_id": org, "data": {"id": 1}}])
    assert rcv.wait_for(lambda reqs: len(reqs) == 1, 20)
    assert old.cli("WAIT", "1", "5000") == "1"  # the replica has every write so far

    old.proc.kill()
    old.proc.wait()
    new = next(r for r in sentinel_set.servers if r is not old)
    s.api.post_events([{"type": "user.updated", "organization_id": org, "data": {"id": 2}}])
    sentinel_set.wait_for_master(new)
    assert rcv.wait_for(lambda reqs: len(reqs) == 2, 20)
    # the dispatcher reaches the new master (until then it uses the subscriber lists it read last, so a webhook
    # created meanwhile gets events from its next lookup on)
    wait_until(lambda: d.metrics()["hookd_dispatcher_redis_up"] == 1, memcheck.scaled(15), what="redis up again")
    hook = create_when_possible(s, org, rcv.url("/new"), "user.updated")
    assert new.cli("HEXISTS", f"hookd:subs:{org}:user.updated", str(hook["id"])) == "1"
    s.api.post_events([{"type": "user.updated", "organization_id": org, "data": {"id": 3}}])
    assert rcv.wait_for(lambda reqs: sorted(r.path for r in reqs) == ["/kept", "/kept", "/kept", "/new"], 30), \
        (sorted(r.path for r in rcv.requests()), d.story())


def test_a_redis_turned_replica_refuses_writes_with_503_and_the_delivery_log_waits(kafka_broker, test_ca,
                                                                                    tmp_path):
    """No sentinel: REDIS_URL's Redis is made a replica (REPLICAOF, as an operator's switch-over does, which keeps
    its clients connected). Its writes are refused with READONLY: the API answers 503 with a JSON error (it tries
    once more on a new connection first), the dispatcher still delivers to cached subscribers and keeps their
    delivery-log records instead of dropping them. When it is master again, the records are written and the API
    works."""
    primary = RedisServer().start()
    other = RedisServer(extra_args=["--replicaof", "127.0.0.1", str(primary.port)]).start()
    s = None
    try:
        s = Stack(primary, kafka_broker, test_ca, str(tmp_path))
        rcv = s.receiver()
        org = s.new_org()
        RedisSentinelSet.wait_in_sync(other)
        _, d, log_key = deliver_one_and_replicate(s, primary, rcv, org, "/log", "time.entry.created")

        other.cli("REPLICAOF", "NO", "ONE")  # the switch-over: the other one is master, ours its replica
        primary.cli("REPLICAOF", "127.0.0.1", str(other.port))
        RedisSentinelSet.wait_in_sync(primary)
        s.api.post_events([{"type": "time.entry.created", "organization_id": org, "data": {"id": 2}}])
        assert rcv.wait_for(lambda reqs: len(reqs) == 2, 20)
        wait_until(lambda: any(line.get("msg", "").startswith("redis refused a write") for line in d.proc.log_lines()),
                   memcheck.scaled(10), what="the refused delivery-log write")
        status, body = http("POST", s.api.url + "/api/v1/webhooks",
                            {"url": rcv.url("/refused"), "event_type": "time.entry.created"},
                            token=s.api.org_token(org))
        assert status == 503 and body["message"], (status, body)
        assert primary.cli("LLEN", log_key) == "1"

        primary.cli("REPLICAOF", "NO", "ONE")  # back: ours is master again (with the other's data, the same)
        wait_until(lambda: primary.cli("LLEN", log_key) == "2", memcheck.scaled(15),
                   what=f"the record held while Redis was a replica\n{d.proc.tail()}")
        create_when_possible(s, org, rcv.url("/taken"), "time.entry.created")
        assert d.proc.running and s.api.proc.running
    finally:
        if s is not None:
            s.close()
        for r in (primary, other):
            r.stop()
            r.cleanup()


def wait_until_redis_not_ready(metrics: str, reason: str) -> None:
    """Waits until the dispatcher whose ops port is at metrics answers /readyz 503, saying Redis is not ok because
    of reason (the check's text)."""
    def readyz():
        try:
            return http("GET", f"http://{metrics}/readyz")
        except OSError:  # not listening yet
            return None, None

    wait_until(lambda: readyz()[0] == 503, memcheck.scaled(20), what="/readyz 503")
    assert readyz()[1]["checks"]["redis"] == reason


def test_without_an_answering_sentinel_the_dispatcher_is_not_ready(tmp_path):
    """REDIS_SENTINELS names a sentinel nobody runs: the dispatcher starts, says why in its log and /readyz says
    Redis is not ok: "no sentinel answered"."""
    metrics = f"127.0.0.1:{free_port()}"
    env = dict(os.environ, REDIS_URL="redis://unused/0", REDIS_SENTINELS=f"127.0.0.1:{free_port()}",
               REDIS_SENTINEL_MASTER="hookd", METRICS_ADDR=metrics, KAFKA_BROKERS="127.0.0.1:1", LOG_LEVEL="info")
    log = tmp_path / "dispatcher.log"
    with open(log, "wb") as out:
        p = subprocess.Popen(memcheck.wrap([str(BIN / "dispatcher")], "dispatcher-no-sentinel", str(tmp_path)),
                             env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: "redis master unknown: no sentinel answered" in log.read_text(), memcheck.scaled(20),
                   what="the reason in the log")
        wait_until_redis_not_ready(metrics, "no sentinel answered")
    finally:
        p.terminate()
        p.wait(timeout=memcheck.scaled(30))


def test_a_server_the_sentinel_calls_master_but_that_is_a_replica_is_not_used(tmp_path):
    """A sentinel's answer can be stale (mid-failover) or wrong (it monitors a replica's address): hookd checks ROLE
    on every connection it opens through the sentinels, and uses none whose server is not the master: the reason is
    logged, /readyz says Redis is "not the master", and nothing is read from or written to the replica."""
    master = RedisServer().start()
    replica = RedisServer(extra_args=["--replicaof", "127.0.0.1", str(master.port)]).start()
    sentinel_dir = tmp_path / "sentinel"
    sentinel_dir.mkdir()
    sentinel_port = free_port()
    conf = sentinel_dir / "sentinel.conf"
    conf.write_text(f"port {sentinel_port}\nbind 127.0.0.1\ndir {sentinel_dir}\n"
                    f"sentinel monitor hookd 127.0.0.1 {replica.port} 1\n")  # the replica's address, as "master"
    sentinel = subprocess.Popen(["redis-server", str(conf), "--sentinel"], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = f"127.0.0.1:{free_port()}"
    log = tmp_path / "dispatcher.log"
    p = None
    try:
        wait_until(lambda: subprocess.run(["redis-cli", "-p", str(sentinel_port), "SENTINEL",
                                           "get-master-addr-by-name", "hookd"], capture_output=True,
                                          text=True).stdout.split()[1:2] == [str(replica.port)], 10,
                   what="the sentinel naming the replica")
        env = dict(os.environ, REDIS_URL="redis://unused/0", REDIS_SENTINELS=f"127.0.0.1:{sentinel_port}",
                   REDIS_SENTINEL_MASTER="hookd", METRICS_ADDR=metrics, KAFKA_BROKERS="127.0.0.1:1",
                   LOG_LEVEL="info")
        with open(log, "wb") as out:
            p = subprocess.Popen(memcheck.wrap([str(BIN / "dispatcher")], "dispatcher-replica", str(tmp_path)),
                                 env=env, stdout=out, stderr=subprocess.STDOUT)
        wait_until(lambda: "is not the master (yet)" in log.read_text(), memcheck.scaled(20), what="the refusal")
        line = next(json.loads(x) for x in log.read_text().splitlines() if "is not the master (yet)" in x)
        assert line["role"] == "slave" and line["port"] == replica.port, line
        wait_until_redis_not_ready(metrics, "not the master")
    finally:
        if p is not None:
            p.terminate()
            p.wait(timeout=memcheck.scaled(30))
        sentinel.terminate()
        sentinel.wait(timeout=10)
        for r in (replica, master):
            r.stop()
            r.cleanup()


def test_sentinels_that_check_an_acl_user_are_asked_as_that_user(tmp_path):
    """A Redis 6.2+ sentinel with ACL users (here its default user off): hookd asks it as REDIS_SENTINEL_USERNAME
    with REDIS_SENTINEL_PASSWORD, finds the master and is ready; with the password alone (AUTH as the default user)
    the sentinel refuses it, and /readyz says "no sentinel answered"."""
    master = RedisServer().start()
    sentinel_dir = tmp_path / "sentinel"
    sentinel_dir.mkdir()
    sentinel_port = free_port()
    conf = sentinel_dir / "sentinel.conf"
    conf.write_text(f"port {sentinel_port}\nbind 127.0.0.1\ndir {sentinel_dir}\n"
                    f"sentinel monitor hookd 127.0.0.1 {master.port} 1\n"
                    "user default off\nuser hookd-sentinel on >s3ntinel allchannels +@all\n")
    sentinel = subprocess.Popen(["redis-server", str(conf), "--sentinel"], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs = []
    try:
        wait_until(lambda: subprocess.run(["redis-cli", "-p", str(sentinel_port), "--user", "hookd-sentinel",
                                           "--pass", "s3ntinel", "--no-auth-warning", "SENTINEL",
                                           "get-master-addr-by-name", "hookd"], capture_output=True,
                                          text=True).stdout.split()[1:2] == [str(master.port)], 10,
                   what="the sentinel naming the master")

        def dispatcher(name, **env):
            metrics = f"127.0.0.1:{free_port()}"
            full = dict(os.environ, REDIS_URL="redis://unused/0", REDIS_SENTINELS=f"127.0.0.1:{sentinel_port}",
                        REDIS_SENTINEL_MASTER="hookd", METRICS_ADDR=metrics, KAFKA_BROKERS="127.0.0.1:1", **env)
            with open(tmp_path / f"{name}.log", "wb") as out:
                procs.append(subprocess.Popen(memcheck.wrap([str(BIN / "dispatcher")], name, str(tmp_path)),
                                              env=full, stdout=out, stderr=subprocess.STDOUT))
            return metrics

        as_user = dispatcher("dispatcher-sentinel-user", REDIS_SENTINEL_USERNAME="hookd-sentinel",
                             REDIS_SENTINEL_PASSWORD="s3ntinel")
        as_default = dispatcher("dispatcher-sentinel-default", REDIS_SENTINEL_PASSWORD="s3ntinel")
        # 503 throughout: Kafka is a closed port
        wait_until(lambda: readyz_check(as_user) == (503, "ok"), memcheck.scaled(20),
                   what="Redis ok through the sentinel")
        wait_until(lambda: readyz_check(as_default) == (503, "no sentinel answered"), memcheck.scaled(20),
                   what="the default user refused")
        refused = [json.loads(x) for x in (tmp_path / "dispatcher-sentinel-default.log").read_text().splitlines()
                   if "no sentinel answered" in x]
        assert refused and "AUTH" in refused[0]["error"], refused[:1]
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=memcheck.scaled(30))
        sentinel.terminate()
        sentinel.wait(timeout=10)
        master.stop()
        master.cleanup()


@pytest.mark.parametrize("binary", ["producer-api", "dispatcher"])
@pytest.mark.parametrize("sentinels, master, why", [
    ("127.0.0.1:26379", None, "REDIS_SENTINEL_MASTER"),
    ("127.0.0.1:26379,,x:1", "hookd", "REDIS_SENTINELS must be host[:port]"),
    ("::1:26379", "hookd", "REDIS_SENTINELS must be host[:port]"),
    ("h:0", "hookd", "REDIS_SENTINELS must be host[:port]"),
])
def test_sentinel_settings_are_checked_at_start(binary, sentinels, master, why):
    env = dict(os.environ, REDIS_URL="redis://unused/0", REDIS_SENTINELS=sentinels, KAFKA_BROKERS="127.0.0.1:1",
               METRICS_ADDR=f"127.0.0.1:{free_port()}", LISTEN_ADDR=f"127.0.0.1:{free_port()}")
    env.pop("REDIS_SENTINEL_MASTER", None)
    if master is not None:
        env["REDIS_SENTINEL_MASTER"] = master
    out = subprocess.run([str(BIN / binary)], env=env, capture_output=True, text=True, timeout=20)
    assert out.returncode == 2 and why in out.stderr, out.stderr
