"""producer-api's /readyz names why Redis fails, as it does for Kafka: a wrong or missing password, a database the
server does not have, an ACL that forbids the check, a server that is gone. Each case runs its own redis-server
(the session's shared one is left alone), breaks it, reads the reason, then mends it and sees "ok" again.

Kafka is a closed port here, so /readyz is 503 throughout; only its Redis check is read.
"""

import socket
import subprocess
import time

import pytest
import requests

from support import memcheck
from support.producer_api import ProducerApi, closed_port
from support.services import RedisServer


def redis_check(api) -> str:
    r = requests.get(api.base_url + "/readyz", timeout=10)
    assert r.status_code == 503, r.text  # Kafka is down in every case
    return r.json()["checks"]["redis"]


def wait_for_check(api, want: str, limit_s: float = 10.0) -> None:
    """Polls /readyz until its Redis check reads want (the connection's backoff after a refused AUTH is 2 s, and
    each /readyz waits up to 1 s for the closed Kafka port's metadata)."""
    deadline = time.monotonic() + memcheck.scaled(limit_s)
    seen = None
    while time.monotonic() < deadline:
        seen = redis_check(api)
        if seen == want:
            return
        time.sleep(0.05)
    raise AssertionError(f"/readyz redis check {seen!r}, wanted {want!r}")


def cli_as(redis: RedisServer, password: str, *args: str) -> str:
    """redis-cli with AUTH (RedisServer.cli has none)."""
    out = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(redis.port), "--no-auth-warning", "-a", password,
                          *args], capture_output=True, text=True, timeout=10, check=True)
    return out.stdout.strip()


@pytest.fixture
def redis(tmp_path):
    server = RedisServer(tmpdir=str(tmp_path / "redis")).start()
    try:
        yield server
    finally:
        server.stop()


def started(url: str) -> ProducerApi:
    return ProducerApi(url, f"127.0.0.1:{closed_port()}")


@pytest.mark.parametrize("password, want", [("", "authentication required"), ("wrong", "authentication refused")])
def test_a_password_redis_wants_and_does_not_get(redis, password, want):
    """REDIS_URL without the password the server requires: its NOAUTH answer; with a wrong one: AUTH refused. Once
    the server wants what the URL gives, "ok"."""
    url = f"redis://{':' + password + '@' if password else ''}127.0.0.1:{redis.port}/0"
    redis.cli("CONFIG", "SET", "requirepass", "s3cret")
    api = started(url)
    try:
        wait_for_check(api, want)
        # mended: the server wants the password the URL gives (none: no password at all)
        cli_as(redis, "s3cret", "CONFIG", "SET", "requirepass", password)
        wait_for_check(api, "ok")
    finally:
        api.stop()
        api.cleanup()


def test_a_database_the_server_does_not_have(redis):
    """SELECT 99 on a server with the default 16 databases is refused at every connect."""
    api = started(f"redis://127.0.0.1:{redis.port}/99")
    try:
        wait_for_check(api, "database refused (SELECT)")
    finally:
        api.stop()
        api.cleanup()


def test_an_acl_user_without_the_check_command(redis):
    """A Redis 6+ ACL user that may not run PING (the check /readyz makes): NOPERM, named; granted, ok."""
    redis.cli("ACL", "SETUSER", "hookd", "on", ">pw", "~*", "&*", "+@all", "-ping")
    api = started(f"redis://hookd:pw@127.0.0.1:{redis.port}/0")
    try:
        wait_for_check(api, "command not permitted by the ACL")
        redis.cli("ACL", "SETUSER", "hookd", "+ping")
        wait_for_check(api, "ok")
    finally:
        api.stop()
        api.cleanup()


def test_a_server_that_is_gone_then_back(redis):
    """Stopped: the connect is refused, "unreachable"; started again on its port: "ok"."""
    api = started(redis.url)
    try:
        wait_for_check(api, "ok")
        redis.stop()
        wait_for_check(api, "unreachable")
        redis.resume()
        wait_for_check(api, "ok")
    finally:
        api.stop()
        api.cleanup()


def test_a_redis_that_hung_and_came_back_wanting_a_password_reads_as_such(tmp_path):
    """A Redis that hangs closes producer-api's gate (commands fail at once until its prober hears an answer). One
    that then answers every command with an error (here NOAUTH: a password set during the hang) is answering:
    the gate opens, /readyz says "authentication required" and the API's requests meet that error, instead of
    the gate staying shut and /readyz saying "not answering" for as long as the password is wrong."""
    redis = RedisServer(tmpdir=str(tmp_path / "redis"), extra_args=["--enable-debug-command", "local"]).start()
    api = started(redis.url)
    try:
        wait_for_check(api, "ok")
        # one write: DEBUG SLEEP holds the server 3 s (past the 2 s command timeout), and the CONFIG SET behind it
        # in the same client's buffer runs before any other client's command
        with socket.create_connection(("127.0.0.1", redis.port), timeout=10) as s:
            s.sendall(b"DEBUG SLEEP 3\r\nCONFIG SET requirepass s3cret\r\n")
            time.sleep(0.3)
            assert redis_check(api) == "not answering"  # the check's PING timed out: the gate is shut
            got = b""
            while got.count(b"+OK\r\n") < 2:
                got += s.recv(100)
        wait_for_check(api, "authentication required")
        cli_as(redis, "s3cret", "CONFIG", "SET", "requirepass", "")
        wait_for_check(api, "ok")
    finally:
        api.stop()
        api.cleanup()
        redis.stop()
