"""Fixtures for the dispatcher end-to-end tests (owned by the dispatcher).

Real everything: redis_server and kafka_broker (tests/conftest.py), bin/producer-api (one per test, with a
unique TOPIC_PREFIX so no test sees another's events), bin/dispatcher processes, and HTTPS receivers
(tests/support/receiver.py) trusted through RECEIVER_CA_FILE.

  stack          -> Stack: .api (producer-api helper), .ca, .receiver(), .dispatcher(**env) -> Dispatcher
  HOOKD_BIN      -> where the binaries are (default <repo>/bin)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from support import memcheck
from support.receiver import Receiver, TestCA
from support.services import free_port

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("HOOKD_BIN", REPO / "bin"))
if not BIN.is_absolute():
    BIN = REPO / BIN
PARTITIONS = 2  # per topic, in these tests


def kafka_partition(key: str, partitions: int) -> int:
    """The partition librdkafka's murmur2 partitioners (and Java's default) choose for a key."""
    data, m = key.encode(), 0x5BD1E995
    h = (0x9747B28C ^ len(data)) & 0xFFFFFFFF
    whole = len(data) - len(data) % 4
    for i in range(0, whole, 4):
        k = (int.from_bytes(data[i:i + 4], "little") * m) & 0xFFFFFFFF
        k = ((k ^ (k >> 24)) * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    rest = data[whole:]
    if len(rest) == 3:
        h ^= rest[2] << 16
    if len(rest) >= 2:
        h ^= rest[1] << 8
    if rest:
        h = ((h ^ rest[0]) * m) & 0xFFFFFFFF
    h = ((h ^ (h >> 13)) * m) & 0xFFFFFFFF
    h ^= h >> 15
    return (h & 0x7FFFFFFF) % partitions


def http(method: str, url: str, body=None, token: Optional[str] = None, timeout: float = 10.0):
    """(status, parsed JSON or text) of one HTTP request; a bytes body is sent as it is, anything else as JSON."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def readyz_check(addr: str, check: str = "redis"):
    """(status, the named check) of GET /readyz on the ops port at addr ("host:port"), or None while nothing listens
    there yet: for waiting until a check reads what a test expects, e.g. (503, "not answering")."""
    try:
        status, body = http("GET", f"http://{addr}/readyz")
    except OSError:  # not listening yet
        return None
    return status, body["checks"][check]


def wait_until(predicate, timeout: float, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Process:
    """A child process with its stderr in a log file."""

    def __init__(self, name: str, argv: List[str], env: Dict[str, str], workdir: str):
        self.name = name
        self.workdir = workdir
        self.log_path = os.path.join(workdir, f"{name}.log")
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(memcheck.wrap(argv, name, workdir), env=env, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.running:
            self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self, timeout: float = 30.0) -> Optional[int]:
        timeout = memcheck.scaled(timeout)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def kill9(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def memcheck_problems(self) -> List[str]:
        """After stop(): sanitizer abort/report in the log, valgrind errors/definite leaks (support/memcheck.py)."""
        if self.proc.returncode == -9:  # SIGKILLed on purpose: only reports already written count
            return memcheck.problems(self.name, None, self.tail(10**6), None, None)
        return memcheck.problems(self.name, self.proc.returncode, self.tail(10**6), self.proc.pid, self.workdir)

    def log_lines(self) -> List[dict]:
        out = []
        with open(self.log_path, "rb") as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    def tail(self, n: int = 40) -> str:
        with open(self.log_path, "rb") as f:
            return b"".join(f.readlines()[-n:]).decode(errors="replace")


def new_topic_prefix() -> str:
    """A TOPIC_PREFIX no other test uses."""
    return f"t{uuid.uuid4().hex[:10]}."


def new_group() -> str:
    """A KAFKA_GROUP no other test uses."""
    return f"hookd-test-{uuid.uuid4().hex[:8]}"


class Api:
    """bin/producer-api on a free port with its own topic prefix, and its tokens. wait_ready=False: returns once
    the process runs (a test of a producer-api that is never ready; tokens need only Redis)."""

    def __init__(self, redis_server, kafka_broker, workdir: str, wait_ready: bool = True,
                 prefix: Optional[str] = None):
        self.redis = redis_server
        self.kafka = kafka_broker
        self.prefix = prefix or new_topic_prefix()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = dict(os.environ, REDIS_URL=redis_server.url, KAFKA_BROKERS=kafka_broker.bootstrap,
                        TOPIC_PREFIX=self.prefix, TOPIC_PARTITIONS=str(PARTITIONS),
                        LISTEN_ADDR=f"127.0.0.1:{self.port}", ALLOW_PRIVATE_TARGETS="1", LOG_LEVEL="warn",
                        **redis_server.client_env(), **kafka_broker.client_env())
        self.proc = Process("producer-api", [str(BIN / "producer-api")], self.env, workdir)
        if wait_ready:
            wait_until(lambda: self._ready(), memcheck.scaled(60), what=f"producer-api ready\n{self.proc.tail()}")
        self.service_token = self._token("--service")
        self._org_tokens: Dict[int, str] = {}

    def _ready(self) -> bool:
        if not self.proc.running:
            raise AssertionError(f"producer-api exited:\n{self.proc.tail()}")
        try:
            return http("GET", self.url + "/readyz", timeout=2)[0] == 200
        except OSError:
            return False

    def _token(self, *args: str) -> str:
        r = subprocess.run(memcheck.wrap([str(BIN / "producer-api"), "token", "create", *args], "producer-api-cli",
                                         self.proc.workdir), env=self.env,
                           capture_output=True, text=True, timeout=memcheck.scaled(30), check=True)
        return r.stdout.strip().split()[-1]

    def org_token(self, org: int) -> str:
        if org not in self._org_tokens:
            self._org_tokens[org] = self._token("--org", str(org))
        return self._org_tokens[org]

    def topics(self) -> List[str]:
        from_types = ["project.created", "project.updated", "time.entry.created", "time.entry.updated",
                      "user.created", "user.updated", "assignment.created", "assignment.updated"]
        return [self.prefix + t for t in from_types]

    def create_webhook(self, org: int, url: str, event_type: str) -> dict:
        status, body = http("POST", self.url + "/api/v1/webhooks", {"url": url, "event_type": event_type},
                            token=self.org_token(org))
        assert status in (200, 201), (status, body)
        return body

    def delete_webhook(self, org: int, webhook_id: int) -> None:
        status, body = http("DELETE", f"{self.url}/api/v1/webhooks/{webhook_id}", token=self.org_token(org))
        assert status in (200, 204), (status, body)

    def post_events(self, events: List[dict]) -> List[str]:
        """Publishes events (service token); returns their ids in order."""
        ids = []
        for i in range(0, len(events), 500):
            chunk = events[i:i + 500]
            status, body = http("POST", self.url + "/api/v1/events", chunk, token=self.service_token, timeout=30)
            assert status in (200, 201, 202), (status, body)
            items = body.get("data", body) if isinstance(body, dict) else body
            for item in items if isinstance(items, list) else [items]:
                ids.append(item["id"])
        assert len(ids) == len(events), body
        return ids

    def stop(self) -> None:
        self.proc.stop()


class Dispatcher:
    """One bin/dispatcher process."""

    def __init__(self, stack: "Stack", name: str, env: Dict[str, str]):
        self.metrics_port = free_port()
        self.env = dict(os.environ, **stack.api.redis.client_env(), **stack.api.kafka.client_env(),
                        KAFKA_BROKERS=stack.api.kafka.bootstrap,
                        REDIS_URL=stack.api.redis.url,
                        KAFKA_GROUP=stack.group, TOPIC_PREFIX=stack.api.prefix,
                        METRICS_ADDR=f"127.0.0.1:{self.metrics_port}", RECEIVER_CA_FILE=stack.ca.ca_cert,
                        # under valgrind (~8x slower) a first attempt's TLS handshake and CA load can outlast 5 s:
                        # the receiver got it, the attempt timed out, the retry was a duplicate (CI, 2026-12-03)
                        ALLOW_PRIVATE_TARGETS="1", DELIVERY_TIMEOUT=f"{int(memcheck.scaled(5))}s", SHUTDOWN_GRACE="20s",
                        KAFKA_SESSION_TIMEOUT_MS="6000", KAFKA_HEARTBEAT_INTERVAL_MS="500", LOG_LEVEL="info",
                        LOG_ATTEMPTS="all")  # attempts() reads every attempt from the log
        if memcheck.VALGRIND:
            # valgrind runs a process's threads one at a time: eight librdkafka clients (CONSUMER_PER_TOPIC=1, some
            # 50 threads) took the valgrind stage of CI from 280 to 518 s (one test from ~30 s to 4 min), past
            # CI's 30 minutes. Under valgrind the dispatchers use one client (the same consumer.c with one member);
            # make test (ASan) runs every test with the eight.
            self.env.setdefault("CONSUMER_PER_TOPIC", "0")
            # valgrind runs one thread at a time: a heartbeat thread kept waiting past the 6 s session loses every
            # partition mid-test (what is lost then is taken back without repeating work, but the test is about
            # something else)
            self.env["KAFKA_SESSION_TIMEOUT_MS"] = str(int(memcheck.scaled(6000)))
        self.env.update(env)
        for name in [k for k, v in self.env.items() if v is None]:  # env={"X": None}: X unset, its default
            del self.env[name]
        self.proc = Process(name, [str(BIN / "dispatcher")], self.env, stack.workdir)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.metrics_port}{path}"

    def group_of(self, event_type: str) -> str:
        """The consumer group that commits the event topic's offsets: one per topic, KAFKA_GROUP itself when
        the dispatcher has one consumer for the eight topics (dispatcher/group_handover.h)."""
        group = self.env["KAFKA_GROUP"]
        return group if self.env.get("CONSUMER_PER_TOPIC") == "0" else f"{group}.{event_type}"

    def metrics(self) -> Dict[str, float]:
        """Prometheus samples: {'name{labels}': value}."""
        with urllib.request.urlopen(self.url("/metrics"), timeout=5) as resp:
            text = resp.read().decode()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                out[key] = float(value)
        return out

    def assigned(self) -> int:
        try:
            return int(self.metrics().get("hookd_dispatcher_assigned_partitions", 0))
        except OSError:
            return 0

    def ready(self) -> bool:
        if not self.proc.running:
            raise AssertionError(f"{self.proc.name} exited:\n{self.proc.tail()}")
        try:
            return http("GET", self.url("/readyz"), timeout=2)[0] == 200
        except OSError:
            return False

    def wait_ready(self, timeout: float = 60) -> "Dispatcher":
        timeout = memcheck.scaled(timeout)
        wait_until(self.ready, timeout, what=f"{self.proc.name} ready\n{self.proc.tail()}")
        return self

    def attempts(self) -> List[dict]:
        return [line for line in self.proc.log_lines() if line.get("msg") == "delivery attempt"]

    def story(self, n: int = 60) -> str:
        """The last n log lines that are not delivery attempts (assignments, pauses, seeks, warnings): what a
        failed assertion about duplicates or losses should show."""
        with open(self.proc.log_path, "rb") as f:
            lines = [ln for ln in f if b'"delivery attempt"' not in ln]
        return b"".join(lines[-n:]).decode(errors="replace")


class Stack:
    """Per-test world: a producer-api with a fresh topic prefix, a consumer group name, the test CA."""

    def __init__(self, redis_server, kafka_broker, ca: TestCA, workdir: str, prefix: Optional[str] = None,
                 group: Optional[str] = None):
        """prefix, group: the TOPIC_PREFIX and KAFKA_GROUP (new ones by default)."""
        self.workdir = workdir
        self.ca = ca
        self.group = group or new_group()
        self.api = Api(redis_server, kafka_broker, workdir, prefix=prefix)
        self.partitions_total = PARTITIONS * 8
        self._receivers: List[Receiver] = []
        self._dispatchers: List[Dispatcher] = []
        self._org = int(time.time() * 1000) % 10**9 * 10

    def new_org(self) -> int:
        self._org += 1
        return self._org

    def receiver(self, tickets: bool = True) -> Receiver:
        r = Receiver(self.ca, tickets=tickets).start()
        self._receivers.append(r)
        return r

    def dispatcher(self, name: Optional[str] = None, **env: Optional[str]) -> Dispatcher:
        d = Dispatcher(self, name or f"dispatcher{len(self._dispatchers) + 1}", env)
        self._dispatchers.append(d)
        return d

    def close(self) -> None:
        bad = []
        for d in self._dispatchers:
            code = d.proc.stop(timeout=30)
            if code not in (0, -9):  # -9: killed on purpose; anything else (sanitizer reports too) fails
                bad.append(f"{d.proc.name} exited {code}:\n{d.proc.tail()}")
            bad += d.proc.memcheck_problems()
        self.api.stop()
        bad += self.api.proc.memcheck_problems()
        for r in self._receivers:
            r.stop()
        assert not bad, "\n".join(bad)


def pytest_collection_modifyitems(session, config, items):
    """The tests that stop and start the session's broker (they take kafka_broker themselves) run first: a broker
    takes longer to stop and to start with every topic the suite has made (each test makes its own, ~38
    partitions): with ~2,000 partitions 5-11 s to stop and ~20 s to start instead of 2-3 and ~8. At the end of the
    suite the two Kafka outage tests took 54 and 66 s; first, 29 and 44 s (the suite 416 -> 363 s, 2026-12-05)."""
    def takes_the_broker(item) -> bool:
        code = item.function.__code__
        return "kafka_broker" in code.co_varnames[:code.co_argcount]

    first = [i for i in items if takes_the_broker(i)]
    items[:] = first + [i for i in items if i not in first]


@pytest.fixture(scope="session")
def test_ca():
    """The session's CA and receiver certificate, in a directory removed when the session ends (it holds two private
    keys; every run used to leave one behind in /tmp)."""
    d = tempfile.mkdtemp(prefix="hookd-ca-", dir="/tmp")
    try:
        yield TestCA.create(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def stack(redis_server, kafka_broker, test_ca, tmp_path):
    s = Stack(redis_server, kafka_broker, test_ca, str(tmp_path))
    try:
        yield s
    finally:
        s.close()
