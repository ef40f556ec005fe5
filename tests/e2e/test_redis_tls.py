"""End-to-end: Redis over TLS (rediss://). A redis-server that takes TLS connections only (no plain port), with a
certificate from the tests' CA; producer-api and the dispatcher reach it through their own TLS relay
(common/redis_tls.c), given the CA as REDIS_CA_FILE."""

import json
import os
import subprocess
import time

import pytest

from conftest import BIN, Stack, http, readyz_check, wait_until
from support import memcheck
from support.services import RedisServer, free_port


@pytest.fixture
def tls_redis(test_ca):
    server = RedisServer(tls=test_ca)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        server.cleanup()


@pytest.fixture
def tls_stack(tls_redis, kafka_broker, test_ca, tmp_path):
    s = Stack(tls_redis, kafka_broker, test_ca, str(tmp_path))
    try:
        yield s
    finally:
        s.close()


def test_webhooks_and_deliveries_over_a_tls_only_redis(tls_stack, tls_redis):
    """Tokens, webhooks, the subscriber cache's reads and the change log all go over TLS: the server has no plain
    port, and what the API wrote is read back with redis-cli --tls."""
    s = tls_stack
    assert tls_redis.url.startswith("rediss://")
    rcv = s.receiver()
    org = s.new_org()
    hook = s.api.create_webhook(org, rcv.url("/tls"), "project.created")
    assert tls_redis.cli("HEXISTS", f"hookd:subs:{org}:project.created", str(hook["id"])) == "1"
    d = s.dispatcher().wait_ready()
    s.api.post_events([{"type": "project.created", "organization_id": org, "data": {"id": 1}}])
    assert rcv.wait_for(lambda reqs: len(reqs) == 1, 20)
    # a webhook created now reaches the dispatcher through the change log, read over TLS too
    hook2 = s.api.create_webhook(org, rcv.url("/tls2"), "project.created")
    wait_until(lambda: d.metrics().get("hookd_dispatcher_subscription_changes_total", 0) >= 1, 10,
               what="the change read")
    s.api.post_events([{"type": "project.created", "organization_id": org, "data": {"id": 2}}])
    assert rcv.wait_for(lambda reqs: {r.path for r in reqs} >= {"/tls", "/tls2"} and len(reqs) == 3, 20)
    status, body = http("GET", f"{s.api.url}/api/v1/webhooks/{hook2['id']}", token=s.api.org_token(org))
    assert status == 200 and body["url"].endswith("/tls2")


def test_a_restarted_tls_redis_is_reached_again(tls_stack, tls_redis):
    """A Redis restart closes every TLS connection: each relay ends with its connection (redis-server closes
    without close_notify: logged at info, as the expected end it is), and the next command opens a new one (new
    TCP connection, new handshake)."""
    s = tls_stack
    rcv = s.receiver()
    d = s.dispatcher().wait_ready()
    tls_redis.stop()
    tls_redis.start()  # same port, empty (no persistence): tokens and webhooks are made again
    s.api._org_tokens.clear()
    s.api.service_token = s.api._token("--service")
    org = s.new_org()
    s.api.create_webhook(org, rcv.url("/again"), "user.created")
    wait_until(lambda: http("GET", d.url("/readyz"))[0] == 200, memcheck.scaled(20), what="dispatcher ready again")
    s.api.post_events([{"type": "user.created", "organization_id": org, "data": {"id": 3}}])
    assert rcv.wait_for(lambda reqs: len(reqs) == 1, 30)
    # the server closed its connections without close_notify: an info line each, not a warning
    msgs = [line.get("msg") for line in d.proc.log_lines()]
    assert "redis TLS connection closed by the server" in msgs, d.proc.tail()
    assert "redis TLS connection ended" not in msgs, d.proc.tail()


@pytest.mark.parametrize("ca", ["none", "wrong name"])
def test_a_tls_redis_that_cannot_be_verified_is_not_used(tls_redis, test_ca, tmp_path, ca):
    """Without the CA the server's certificate does not verify; with it but a host name the certificate does not
    name, neither: nothing is sent, /readyz says why Redis is not ok, and so does the log."""
    url = tls_redis.url if ca == "none" else tls_redis.url.replace("127.0.0.1", "127.0.0.2")
    env = dict(os.environ, REDIS_URL=url, METRICS_ADDR=f"127.0.0.1:{free_port()}", KAFKA_BROKERS="127.0.0.1:1",
               LOG_LEVEL="info")
    env.pop("REDIS_CA_FILE", None)
    if ca != "none":
        env["REDIS_CA_FILE"] = test_ca.ca_cert
    log = tmp_path / "dispatcher.log"
    with open(log, "wb") as out:
        p = subprocess.Popen(memcheck.wrap([str(BIN / "dispatcher")], "dispatcher-untrusted", str(tmp_path)), env=env,
                             stdout=out, stderr=subprocess.STDOUT)
    try:
        want = "certificate not trusted: " + ("self-signed certificate in certificate chain" if ca == "none"
                                              else "IP address mismatch")
        wait_until(lambda: want in log.read_text(), memcheck.scaled(20), what=f"{want!r} in the log")
        metrics = env["METRICS_ADDR"]

        def serving():
            try:
                return http("GET", f"http://{metrics}/healthz")[0] == 200
            except OSError:  # not listening yet
                return False

        wait_until(serving, memcheck.scaled(20), what="the ops port")

        # "not checked yet" until the loop has taken the first failed read's result (at its next 200 ms tick)
        wait_until(lambda: readyz_check(metrics) == (503, "TLS: server certificate not trusted"), memcheck.scaled(10),
                   what="/readyz naming the untrusted certificate")
    finally:
        p.terminate()
        p.wait(timeout=memcheck.scaled(30))


def test_a_stalled_tls_redis_costs_its_timeout_and_is_reached_again(tls_stack, tls_redis):
    """Redis over TLS stalls (SIGSTOP). hiredis's read timeout on its socketpair fires as over plain TCP, the
    connection is dropped (hiredis's end closed, then the relay joined: it ends as soon as it sees that close, not
    when the server answers), and while Redis is frozen a cached organization's events are still delivered. When
    Redis answers again, new connections (new handshakes) carry on: a webhook created then gets its event."""
    s = tls_stack
    rcv = s.receiver()
    org = s.new_org()
    s.api.create_webhook(org, rcv.url("/cached"), "project.updated")
    d = s.dispatcher().wait_ready()
    s.api.post_events([{"type": "project.updated", "organization_id": org, "data": {"id": 0}}])
    assert rcv.wait_for(lambda reqs: len(reqs) == 1, 20)
    topic = s.api.prefix + "project.updated"
    tls_redis.freeze()
    try:
        s.api.kafka.produce(topic, json.dumps({"id": "frozen-1", "type": "project.updated", "organization_id": org,
                                               "occurred_at": "2026-12-07T00:00:00Z", "data": {"id": 1}}),
                            key=str(org))
        assert rcv.wait_for(lambda reqs: any(r.headers["webhook-id"] == "frozen-1" for r in reqs), 10), d.proc.tail()
        wait_until(lambda: d.metrics()["hookd_dispatcher_redis_up"] == 0, memcheck.scaled(10), what="redis down")
        time.sleep(2.5)  # past the 2 s timeout of the Redis thread's call: its connection is dropped meanwhile
    finally:
        tls_redis.thaw()
    wait_until(lambda: d.metrics()["hookd_dispatcher_redis_up"] == 1, memcheck.scaled(15), what="redis up again")
    other = s.new_org()
    s.api.create_webhook(other, rcv.url("/after"), "project.updated")
    s.api.post_events([{"type": "project.updated", "organization_id": other, "data": {"id": 2}}])
    assert rcv.wait_for(lambda reqs: any(r.path == "/after" for r in reqs), 20), d.proc.tail()
    # the call that met the stall timed out: a command's, or a delivery-log pipeline's (held for the next round)
    assert any(line.get("msg") == "redis command timed out" or str(line.get("msg")).startswith("delivery log ")
               for line in d.proc.log_lines()), d.proc.tail()


def test_a_tls_redis_that_asks_for_a_client_certificate_gets_one(test_ca, kafka_broker, tmp_path):
    """redis-server with TLS asks every client for a certificate by default (tls-auth-clients yes). Given one
    (REDIS_CLIENT_CERT_FILE, REDIS_CLIENT_KEY_FILE), producer-api and the dispatcher present it and work as usual;
    without it, the server refuses it (in TLS 1.3 after the client's side of the handshake is done: the relay logs
    the server's alert), nothing is stored, and a dispatcher's /readyz says "TLS: client certificate refused"."""
    server = RedisServer(tls=test_ca, client_certs=True)
    server.start()
    try:
        env = {"REDIS_CLIENT_CERT_FILE": test_ca.client_cert(), "REDIS_CLIENT_KEY_FILE": test_ca.client_key()}
        server.client_env = lambda: {"REDIS_CA_FILE": test_ca.ca_cert, **env}
        s = Stack(server, kafka_broker, test_ca, str(tmp_path))
        try:
            rcv = s.receiver()
            org = s.new_org()
            s.api.create_webhook(org, rcv.url("/mtls"), "user.created")
            s.dispatcher().wait_ready()
            s.api.post_events([{"type": "user.created", "organization_id": org, "data": {"id": 1}}])
            assert rcv.wait_for(lambda reqs: len(reqs) == 1, 20)
        finally:
            s.close()
        # without the certificate: refused
        keys_before = server.cli("DBSIZE")
        out = subprocess.run(memcheck.wrap([str(BIN / "producer-api"), "token", "create", "--service"], "api-no-cert",
                                           str(tmp_path)),
                             env=dict(os.environ, REDIS_URL=server.url, REDIS_CA_FILE=test_ca.ca_cert),
                             capture_output=True, text=True, timeout=memcheck.scaled(30))
        assert out.returncode != 0 and "could not store the token" in out.stderr, out.stderr
        # the server's alert says why ("certificate required"), unless its reset overtook it (slow clients: valgrind)
        assert "redis TLS connection ended" in out.stderr and ("certificate required" in out.stderr or
                                                               "Connection reset by peer" in out.stderr), out.stderr
        assert server.cli("DBSIZE") == keys_before  # the token was not stored
        # a dispatcher without it: not ready, and /readyz says why (each reconnect, every 2 s at most, hears the
        # alert again, unless the server's reset overtakes it: then "connection lost" until the next one)
        metrics = f"127.0.0.1:{free_port()}"
        log = tmp_path / "dispatcher-no-cert.log"
        denv = dict(os.environ, REDIS_URL=server.url, REDIS_CA_FILE=test_ca.ca_cert, METRICS_ADDR=metrics,
                    KAFKA_BROKERS="127.0.0.1:1")
        for name in ("REDIS_CLIENT_CERT_FILE", "REDIS_CLIENT_KEY_FILE"):
            denv.pop(name, None)
        with open(log, "wb") as out:
            p = subprocess.Popen(memcheck.wrap([str(BIN / "dispatcher")], "dispatcher-no-cert", str(tmp_path)),
                                 env=denv, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: readyz_check(metrics) == (503, "TLS: client certificate refused"), memcheck.scaled(20),
                       what="/readyz naming the refused certificate")
        finally:
            p.terminate()
            p.wait(timeout=memcheck.scaled(30))
    finally:
        server.stop()
        server.cleanup()


@pytest.mark.parametrize("binary", ["producer-api", "dispatcher"])
@pytest.mark.parametrize("setting, why", [("key missing", "go together"), ("CA unreadable", "REDIS_CA_FILE")])
def test_unusable_redis_tls_files_exit_2(tmp_path, test_ca, binary, setting, why):
    """Settings that cannot work are refused at start with exit 2 (the README's promise), by both services."""
    env = dict(os.environ, METRICS_ADDR=f"127.0.0.1:{free_port()}", LISTEN_ADDR=f"127.0.0.1:{free_port()}",
               REDIS_URL="rediss://127.0.0.1:1/0", KAFKA_BROKERS="127.0.0.1:1")
    for name in ("REDIS_CA_FILE", "REDIS_CLIENT_CERT_FILE", "REDIS_CLIENT_KEY_FILE"):
        env.pop(name, None)
    if setting == "key missing":
        env["REDIS_CLIENT_CERT_FILE"] = test_ca.client_cert()
    else:
        env["REDIS_CA_FILE"] = str(tmp_path / "no-such-ca.pem")
    out = subprocess.run([str(BIN / binary)], env=env, capture_output=True, text=True, timeout=20)
    assert out.returncode == 2 and why in out.stderr, out.stderr
