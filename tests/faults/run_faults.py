#!/usr/bin/python3
"""`make test-faults`: drive the real hookd processes through crashes and outages, count every delivery.

Starts on loopback a private Kafka 3.9.1 broker and a Redis with AOF (tests/support), then per scenario its own
bin/producer-api (own TOPIC_PREFIX), bin/dispatcher processes (own consumer group) and HTTPS receivers
(tests/faults/fault_receiver.py, trusted through RECEIVER_CA_FILE). Events are posted in batches of 500 through
producer-api with client ids; an event counts as accepted only when its batch was answered 202 (a 503 is
retried with the same ids after its Retry-After, as a client would).

Accounting, per scenario, over (event id, webhook) pairs:
  expected      accepted events x the webhooks of their (organization, type)
  delivered     expected pairs some receiver answered 2xx to (webhook-id header, path; recorded only after the
                answer was written out)
  duplicated    2xx answers beyond the first for a pair
  dead-lettered expected pairs not delivered but found on ${TOPIC_PREFIX}dead (envelope id, webhook_id)
  lost          expected - delivered - dead-lettered, after the settle timeout

Prints one table and writes it into docs/RELIABILITY.md (between the faults:begin/faults:end markers) when every
scenario ran; a subset (FAULT_ONLY) writes build/faults/RELIABILITY-partial.md. Exit status 1 if any row lost a
pair, failed one of its checks or could not run.

Environment:
  FAULT_EVENTS   events in scenario 1 (default 8000); scenarios 2, 3, 5, 6, 9 use a quarter, scenario 4 a fortieth
  FAULT_ONLY     comma-separated scenario numbers to run (default: 1-7 and 9; 8, a client that repeats a batch while
                 Kafka is down, is opt-in for its ~90 s; fixed, docs/RELIABILITY.md finding 1)
  FAULT_SETTLE   seconds to wait for the last deliveries of a scenario (default 180)
  FAULT_SEED     random seed (default: random; printed)
  FAULT_LOG_LEVEL  the dispatchers' LOG_LEVEL (default warn; info adds start-up and rebalance lines)
  FAULT_MAX_IN_FLIGHT  the dispatchers' MAX_IN_FLIGHT (default 64)
  HOOKD_BIN      where bin/producer-api and bin/dispatcher are (default <repo>/bin)
  HOOKD_KEEP_TMP=1 keep the work directory (process logs)
"""

from __future__ import annotations

import collections
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from pathlib import Path
from typing import Callable, Dict, List, Optional, Set, Tuple

import requests

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from support.receiver import TestCA  # noqa: E402
from support.services import AofRedis, KafkaBroker, RedisSentinelSet, free_port, kcat_path  # noqa: E402
from fault_receiver import FaultReceiver  # noqa: E402

BIN = Path(os.environ.get("HOOKD_BIN", REPO / "bin"))
if not BIN.is_absolute():
    BIN = REPO / BIN
DOC = REPO / "docs" / "RELIABILITY.md"
PARTIAL = REPO / "build" / "faults" / "RELIABILITY-partial.md"

FAULT_EVENTS = int(os.environ.get("FAULT_EVENTS", "8000"))
SETTLE = float(os.environ.get("FAULT_SETTLE", "180"))
SEED = int(os.environ.get("FAULT_SEED") or random.SystemRandom().randrange(1, 10**6))
ONLY = {int(x) for x in os.environ.get("FAULT_ONLY", "").split(",") if x.strip()}
KEEP = os.environ.get("HOOKD_KEEP_TMP", "") not in ("", "0")

OPT_IN = (8,)                        # fixed (docs/RELIABILITY.md, finding 1), opt-in for its ~90 s: FAULT_ONLY=8
PARTITIONS = 4                       # per topic (event topics, retry tiers, dead letters)
TYPES = ["project.created", "user.created"]
HOOKS_PER_TYPE = 2                   # webhooks per (organization, type): 2 pairs per event
ORGS = 12
SCHEDULE = "1s,1s,1s,2s,2s,5s,5s,10s,10s,10s"   # 11 attempts over ~47 s, then the dead-letter topic
BATCH = 500

T0 = time.monotonic()
rng = random.Random(SEED)


def log(msg: str) -> None:
    print(f"[faults {time.monotonic() - T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


class ScenarioError(Exception):
    pass


def wait_until(pred: Callable, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise ScenarioError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------- services

class Proc:
    def __init__(self, name: str, argv: List[str], env: Dict[str, str], workdir: Path):
        self.name = name
        self.log_path = workdir / f"{name}.log"
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT)

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def kill9(self) -> None:
        if self.running:
            self.proc.kill()
        self.proc.wait()

    def term(self, timeout: float = 40.0) -> Tuple[Optional[int], float]:
        """SIGTERM; returns (exit code, seconds until exit); SIGKILL after timeout (code None)."""
        t = time.monotonic()
        if not self.running:
            return self.proc.returncode, 0.0
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            code = None
        return code, time.monotonic() - t

    def tail(self, n: int = 30) -> str:
        try:
            return b"".join(open(self.log_path, "rb").readlines()[-n:]).decode(errors="replace")
        except OSError:
            return ""

    def grep(self, text: str) -> List[str]:
        try:
            return [ln.decode(errors="replace") for ln in open(self.log_path, "rb") if text.encode() in ln]
        except OSError:
            return []


class World:
    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="hookd-faults-", dir="/tmp"))
        log(f"work dir {self.dir}")
        self.ca = TestCA.create(str(self.dir / "ca"))
        self.wrong_cert = self._wrong_name_cert()
        self.redis = AofRedis(tmpdir=str(self.dir / "redis"))
        self.kafka = KafkaBroker(data_dir=str(self.dir / "kafka"))
        self.kcat = kcat_path()
        if not self.kcat:
            raise SystemExit("kcat is not installed (make deps)")

    def _wrong_name_cert(self) -> Tuple[str, str]:
        """A certificate from the trusted test CA, but for another name (wrong.example.invalid)."""
        d = self.ca.dir
        run = lambda *a: subprocess.run(["openssl", *a], cwd=d, check=True, capture_output=True, timeout=60)
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "wrong.key", "-out", "wrong.csr",
            "-subj", "/CN=wrong.example.invalid")
        with open(os.path.join(d, "wrong.ext"), "w") as f:
            f.write("subjectAltName=DNS:wrong.example.invalid\nbasicConstraints=CA:FALSE\n"
                    "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
        run("x509", "-req", "-in", "wrong.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "wrong.pem", "-days", "2", "-extfile", "wrong.ext")
        return os.path.join(d, "wrong.pem"), os.path.join(d, "wrong.key")

    def start(self) -> None:
        t = time.monotonic()
        self.redis.start()
        self.kafka.start(timeout=240)
        log(f"redis (AOF) on {self.redis.port}, kafka on {self.kafka.bootstrap} in {time.monotonic() - t:.1f}s")

    def close(self) -> None:
        if KEEP:
            self.kafka.stop()
        else:
            self.kafka.kill()  # its data is removed below: no clean shutdown needed (it took seconds)
        self.redis.stop()
        if KEEP:
            log(f"kept {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- a scenario's stack

class Stack:
    """One scenario: producer-api with its own topic prefix, a consumer group, webhooks, receivers."""

    def __init__(self, world: World, name: str, retry: bool = True, redis=None,
                 api_env: Optional[Dict[str, str]] = None):
        self.world = world
        self.redis = redis or world.redis  # a RedisSentinelSet in scenario 9: its client_env() names the sentinels
        self.name = name
        self.workdir = world.dir / name
        self.workdir.mkdir()
        tag = uuid.uuid4().hex[:8]
        self.prefix = f"f{tag}."
        self.group = f"hookd-faults-{tag}"
        self.http = requests.Session()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_env = dict(os.environ, REDIS_URL=self.redis.url, **self.redis.client_env(),
                            KAFKA_BROKERS=world.kafka.bootstrap,
                            TOPIC_PREFIX=self.prefix, TOPIC_PARTITIONS=str(PARTITIONS),
                            LISTEN_ADDR=f"127.0.0.1:{self.port}", ALLOW_PRIVATE_TARGETS="1", LOG_LEVEL="warn")
        self.api_env.update(api_env or {})
        self.api = Proc("producer-api", [str(BIN / "producer-api")], self.api_env, self.workdir)
        wait_until(self._api_ready, 90, "producer-api ready")
        self.service_token = self._token("--service")
        self.org_tokens: Dict[int, str] = {}
        self.receivers: List[FaultReceiver] = []
        self.dispatchers: List[Proc] = []
        self.metrics_ports: Dict[str, int] = {}
        self.hooks: Dict[Tuple[int, str], List[str]] = collections.defaultdict(list)  # (org, type) -> paths
        self.hook_path: Dict[int, str] = {}   # webhook id -> path
        self.hook_org: Dict[int, int] = {}
        self.retry = retry
        self.post_stats = collections.Counter()
        self.expected: Set[Tuple[str, str]] = set()
        self.accepted = 0
        self.bad_exits: List[str] = []
        self.dead_note = ""

    # producer-api
    def _api_ready(self) -> bool:
        if not self.api.running:
            raise ScenarioError(f"producer-api exited:\n{self.api.tail()}")
        try:
            return self.http.get(self.url + "/readyz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def _token(self, *args: str) -> str:
        r = subprocess.run([str(BIN / "producer-api"), "token", "create", *args], env=self.api_env,
                           capture_output=True, text=True, timeout=30, check=True)
        return r.stdout.strip().split()[-1]

    def org_token(self, org: int) -> str:
        if org not in self.org_tokens:
            self.org_tokens[org] = self._token("--org", str(org))
        return self.org_tokens[org]

    def receiver(self) -> FaultReceiver:
        r = FaultReceiver(self.world.ca, self.world.wrong_cert).start()
        self.receivers.append(r)
        return r

    def create_webhook(self, org: int, url: str, path: str, event_type: str) -> int:
        r = self.http.post(self.url + "/api/v1/webhooks", json={"url": url, "event_type": event_type},
                           headers={"Authorization": f"Bearer {self.org_token(org)}"}, timeout=30)
        if r.status_code != 200:
            raise ScenarioError(f"create webhook: {r.status_code} {r.text}")
        wid = r.json()["id"]
        self.hooks[(org, event_type)].append(path)
        self.hook_path[wid] = path
        self.hook_org[wid] = org
        return wid

    def setup_hooks(self, targets: List[Tuple[FaultReceiver, str]], types=TYPES, orgs: int = ORGS) -> List[int]:
        """Each organization gets, for each type, one webhook per target (receiver, label)."""
        base = int(time.time() * 1000) % 10**8 * 100
        out = []
        for o in range(orgs):
            org = base + o
            for t in types:
                for rcv, label in targets:
                    path = f"/o{org}/{t}/{label}"
                    self.create_webhook(org, rcv.url(path), path, t)
            out.append(org)
        return out

    def events(self, orgs: List[int], count: int, types=TYPES) -> List[dict]:
        run = uuid.uuid4().hex[:6]
        return [{"id": f"{self.name}-{run}-{i}", "type": types[i % len(types)],
                 "organization_id": orgs[(i // len(types)) % len(orgs)], "data": {"id": i, "n": i}}
                for i in range(count)]

    def post(self, events: List[dict], pause: float = 0.0, give_up_after: float = 120.0,
             between: Optional[Callable[[int], None]] = None, batch: int = BATCH,
             client_timeout: float = 30.0) -> int:
        """Posts in batches of 500, retrying 503s (after Retry-After) and connection errors with the same ids.
        A batch answered 202 adds its events' pairs to self.expected. Returns the number accepted."""
        accepted = 0
        for bi, i in enumerate(range(0, len(events), batch)):
            if between:
                between(bi)
            chunk = events[i:i + batch]
            deadline = time.monotonic() + give_up_after
            while True:
                try:
                    r = self.http.post(self.url + "/api/v1/events", json=chunk, timeout=client_timeout,
                                       headers={"Authorization": f"Bearer {self.service_token}"})
                    code = r.status_code
                except requests.RequestException:
                    code = None
                if code == 202:
                    ids = [d["id"] for d in r.json()["data"]]
                    if ids != [e["id"] for e in chunk]:
                        raise ScenarioError(f"202 with other ids than posted: {ids[:3]}")
                    self.post_stats["202"] += 1
                    for ev in chunk:
                        for path in self.hooks[(ev["organization_id"], ev["type"])]:
                            self.expected.add((ev["id"], path))
                    accepted += len(chunk)
                    self.accepted += len(chunk)
                    break
                wait = 0.5
                if code == 503:
                    self.post_stats["503"] += 1
                    ra = r.headers.get("Retry-After")
                    if ra is None:
                        self.post_stats["503 without Retry-After"] += 1
                    else:
                        wait = min(float(ra), 2.0) if ra.isdigit() else 1.0
                else:
                    self.post_stats[f"error {code}"] += 1
                if time.monotonic() > deadline:
                    self.post_stats["batches given up"] += 1
                    break
                time.sleep(wait)
            if pause:
                time.sleep(pause)
        return accepted

    # dispatchers
    def dispatcher(self, name: str, **env: str) -> Proc:
        mport = free_port()
        e = dict(os.environ, KAFKA_BROKERS=self.world.kafka.bootstrap, REDIS_URL=self.redis.url,
                 **self.redis.client_env(),
                 KAFKA_GROUP=self.group, TOPIC_PREFIX=self.prefix, METRICS_ADDR=f"127.0.0.1:{mport}",
                 RECEIVER_CA_FILE=self.world.ca.ca_cert, ALLOW_PRIVATE_TARGETS="1", DELIVERY_TIMEOUT="10s",
                 SHUTDOWN_GRACE="15s", KAFKA_SESSION_TIMEOUT_MS="6000", KAFKA_HEARTBEAT_INTERVAL_MS="500",
                 TOPIC_PARTITIONS=str(PARTITIONS), MAX_IN_FLIGHT=os.environ.get("FAULT_MAX_IN_FLIGHT", "64"), LOG_LEVEL=os.environ.get("FAULT_LOG_LEVEL", "warn"),
                 RETRY_SCHEDULE=SCHEDULE if self.retry else "none")
        e.update(env)
        p = Proc(name, [str(BIN / "dispatcher")], e, self.workdir)
        self.metrics_ports[name] = mport
        self.dispatchers.append(p)
        return p

    def metrics(self, d: Proc) -> Dict[str, float]:
        try:
            text = self.http.get(f"http://127.0.0.1:{self.metrics_ports[d.name]}/metrics", timeout=3).text
        except requests.RequestException:
            return {}
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                k, _, v = line.rpartition(" ")
                try:
                    out[k] = float(v)
                except ValueError:
                    pass
        return out

    def assigned(self, d: Proc) -> int:
        return int(self.metrics(d).get("hookd_dispatcher_assigned_partitions", 0))

    def ready(self, d: Proc) -> bool:
        if not d.running:
            raise ScenarioError(f"{d.name} exited ({d.proc.returncode}):\n{d.tail()}")
        try:
            return self.http.get(f"http://127.0.0.1:{self.metrics_ports[d.name]}/readyz",
                                 timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def wait_ready(self, d: Proc, timeout: float = 90) -> Proc:
        wait_until(lambda: self.ready(d), timeout, f"{d.name} ready")
        return d

    # accounting
    def ok_pairs(self) -> collections.Counter:
        c: collections.Counter = collections.Counter()
        for r in self.receivers:
            c.update(r.ok_pairs())
        return c

    def delivered_count(self) -> int:
        return sum(r.delivered_count() for r in self.receivers)

    def dead_pairs(self) -> Optional[Set[Tuple[str, str]]]:
        """(event id, path) of every dead letter, or None when the dead topic does not exist."""
        topic = self.prefix + "dead"
        if topic not in self.world.kafka.topics():
            return None
        r = subprocess.run([self.world.kcat, "-b", self.world.kafka.bootstrap, "-C", "-t", topic, "-o",
                            "beginning", "-e", "-q", "-f", "%s\n"], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=60)
        out = set()
        for line in r.stdout.splitlines():
            try:
                rec = json.loads(line)
                out.add((rec["envelope"]["id"], self.hook_path.get(int(rec["webhook_id"]), "?")))
            except (ValueError, KeyError, TypeError):
                self.post_stats["malformed dead letters"] += 1
        return out

    def settle(self, timeout: float = SETTLE) -> None:
        """Waits until every expected pair is delivered (or dead-lettered), then 2 s more for stragglers."""
        deadline = time.monotonic() + timeout
        last_dead = 0.0
        dead: Set = set()
        while time.monotonic() < deadline:
            got = set(self.ok_pairs())
            missing = self.expected - got
            if missing and self.retry and time.monotonic() - last_dead > 5:
                dead = self.dead_pairs() or set()
                last_dead = time.monotonic()
            if not (missing - dead):
                break
            time.sleep(0.5)
        time.sleep(2.0)

    def close(self) -> None:
        for d in self.dispatchers:
            if d.running:
                code, _ = d.term(40)
                if code != 0:
                    self.bad_exits.append(f"{d.name} exited {code} on SIGTERM at the end")
            elif d.proc.returncode not in (0, -9):
                self.bad_exits.append(f"{d.name} exited {d.proc.returncode}")
        self.api.term(30)
        for r in self.receivers:
            r.stop()

    def row(self, title: str, checks: List[Tuple[str, bool]], notes: List[str]) -> dict:
        got = self.ok_pairs()
        delivered_set = set(got) & self.expected
        dup = sum(n - 1 for p, n in got.items() if n > 1 and p in self.expected)
        unexpected = len(set(got) - self.expected)
        dead = self.dead_pairs() if self.retry else None
        if dead is None:
            dead_n = 0
            notes.append("no dead-letter topic (retries not enabled)" if not self.retry
                         else "dead-letter topic absent: counted 0")
        else:
            dead_n = len((dead & self.expected) - delivered_set)
            also = len(dead & delivered_set)
            if also:
                notes.append(f"{also} pairs both dead-lettered and delivered")
        lost = len(self.expected - delivered_set - (dead or set()))
        if unexpected:
            notes.append(f"{unexpected} deliveries of pairs never 202'd")
        for k in ("503", "503 without Retry-After", "batches given up", "malformed dead letters", "malformed events"):
            if self.post_stats.get(k):
                notes.append(f"{k}: {self.post_stats[k]}")
        errs = {k: v for k, v in self.post_stats.items() if k.startswith("error")}
        if errs:
            notes.append("post errors " + ", ".join(f"{k[6:]}×{v}" for k, v in sorted(errs.items())))
        for b in self.bad_exits:
            checks.append((b, False))
        return {"scenario": title, "accepted": self.accepted, "expected": len(self.expected),
                "delivered": len(delivered_set), "duplicated": dup, "dead": dead_n, "lost": lost,
                "checks": checks, "notes": notes}


def delivered_progress(s: Stack, frac: float, timeout: float, what: str) -> None:
    """Waits until frac of the expected pairs so far are delivered (at least one)."""
    wait_until(lambda: s.delivered_count() >= max(1, int(frac * len(s.expected))), timeout, what, 0.05)


def poster_thread(fn) -> Tuple[threading.Thread, list]:
    err: list = []

    def run():
        try:
            fn()
        except BaseException as e:  # noqa: BLE001
            err.append(e)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, err


# ---------------------------------------------------------------------------------------------- scenarios

def s1_kill9(world: World, n: int) -> dict:
    s = Stack(world, "s1-kill9")
    try:
        rcv = s.receiver()
        orgs = s.setup_hooks([(rcv, "a"), (rcv, "b")])
        events = s.events(orgs, n)
        gen = 0
        d = s.wait_ready(s.dispatcher(f"d{gen}"))
        # 5 kills at random points of the delivery (fractions of all pairs), each a random 0-0.5 s later
        total_pairs = n * HOOKS_PER_TYPE
        marks = sorted(rng.uniform(0.05, 0.85) for _ in range(5))
        t, err = poster_thread(lambda: s.post(events, pause=0.05))
        kills = []
        for m in marks:
            # this generation must be delivering (not only rejoining the group) when it is killed
            born = rcv.requests_total
            wait_until(lambda: s.delivered_count() >= int(m * total_pairs) and rcv.requests_total - born >= 20,
                       SETTLE, f"{m:.0%} delivered", 0.05)
            time.sleep(rng.uniform(0, 0.5))
            at = s.delivered_count()
            d.kill9()
            kills.append(at)
            log(f"  kill -9 {d.name} at {at}/{len(s.expected)} pairs ({rcv.requests_total} answers so far)")
            gen += 1
            d = s.dispatcher(f"d{gen}")   # restarted at once; it rejoins the group on its own
        t.join()
        if err:
            raise err[0]
        s.settle()
        notes = [f"kills at {', '.join(str(k) for k in kills)} pairs delivered"]
        checks = [("5 kills mid-delivery", len(kills) == 5 and all(0 < k < len(s.expected) for k in kills))]
        return s.row("1. kill -9 the dispatcher ×5 mid-run, restart each time", checks, notes)
    finally:
        s.close()


def s2_kafka_stop(world: World, n: int) -> dict:
    s = Stack(world, "s2-kafka-stop")
    try:
        rcv = s.receiver()
        orgs = s.setup_hooks([(rcv, "a"), (rcv, "b")])
        events = s.events(orgs, n)
        d = s.wait_ready(s.dispatcher("d1"))
        batch = max(1, min(BATCH, n // 12))   # at least 12 batches: some before, during and after the outage
        batches = (n + batch - 1) // batch
        stop_at = max(1, batches // 3)
        outage = {}

        def broker_outage():
            outage["stop"] = time.monotonic()
            world.kafka.stop()
            outage["stopped"] = time.monotonic()
            time.sleep(10)
            outage["start"] = time.monotonic()
            world.kafka.start(timeout=240)
            outage["up"] = time.monotonic()

        outage_t: List[threading.Thread] = []

        def between(bi: int):
            if bi == stop_at:
                th = threading.Thread(target=broker_outage, daemon=True)
                th.start()
                outage_t.append(th)
                time.sleep(1.0)  # the broker is going down: post into it
        s.post(events, pause=0.3, give_up_after=240, between=between, batch=batch)
        if not outage_t:
            raise ScenarioError("the outage never started")
        for th in outage_t:
            th.join(300)
        s.wait_ready(d, 120)
        s.settle()
        notes = [f"broker down {outage.get('start', 0) - outage.get('stopped', 0):.0f} s "
                 f"(+{outage.get('up', 0) - outage.get('start', 0):.0f} s to start)"]
        checks = [("producer-api answered 503 while the broker was down", s.post_stats["503"] > 0),
                  ("every 503 had Retry-After", s.post_stats["503 without Retry-After"] == 0),
                  ("no batch given up", s.post_stats["batches given up"] == 0),
                  ("dispatcher survived", d.running)]
        return s.row("2. Kafka broker stopped 10 s mid-run", checks, notes)
    finally:
        if not world.kafka.running:
            world.kafka.start(timeout=240)
        s.close()


def s3_redis_restart(world: World, n: int) -> dict:
    s = Stack(world, "s3-redis-restart")
    try:
        rcv = s.receiver()
        rcv.set_mode("ok", 0.01)  # a little slower, so the backlog outlives the outage
        orgs = s.setup_hooks([(rcv, "a"), (rcv, "b")])
        d = s.wait_ready(s.dispatcher("d1"))
        first = s.events(orgs, n // 2)
        s.post(first)
        delivered_progress(s, 0.15, SETTLE, "15% delivered before the Redis restart")
        before = s.delivered_count()
        t = time.monotonic()
        world.redis.stop()
        time.sleep(3.0)
        during = s.delivered_count() - before
        world.redis.start()
        down = time.monotonic() - t
        # registrations made before the restart survive it (and so do the tokens used to read them)
        survived = _hooks_read_back(s)
        second = s.events(orgs, n - n // 2)
        s.post(second)
        s.settle()
        notes = [f"Redis down {down:.1f} s; {during} pairs delivered meanwhile",
                 f"{survived}/{len(s.hook_org)} webhooks read back after the restart"]
        checks = [("delivered from the cache while Redis was down", during > 0),
                  ("every registration survived", survived == len(s.hook_org)),
                  ("dispatcher survived", d.running)]
        return s.row("3. Redis (AOF) restarted mid-run", checks, notes)
    finally:
        if not world.redis.running:
            world.redis.start()
        s.close()


def s9_redis_failover(world: World, n: int) -> dict:
    """The Redis master is killed -9 mid-run; Redis Sentinel promotes its replica. producer-api and the dispatcher
    know only the sentinels (REDIS_SENTINELS); events keep being posted through the failover."""
    sset = RedisSentinelSet().start()
    s = None
    try:
        s = Stack(world, "s9-redis-failover", redis=sset)
        rcv = s.receiver()
        rcv.set_mode("ok", 0.01)  # a little slower, so the backlog outlives the failover
        orgs = s.setup_hooks([(rcv, "a"), (rcv, "b")])
        d = s.wait_ready(s.dispatcher("d1"))
        old = sset.master()
        replicated = old.cli("WAIT", "1", "5000") == "1"  # replication is asynchronous: registrations first
        s.post(s.events(orgs, n // 2))
        delivered_progress(s, 0.15, SETTLE, "15% delivered before the master is killed")
        before = s.delivered_count()
        t = time.monotonic()
        old.proc.kill()
        old.proc.wait()
        new = next(r for r in sset.servers if r is not old)
        s.post(s.events(orgs, n - n // 2))  # 503 with Retry-After until a master is there again, then 202
        posted_after = time.monotonic() - t
        sset.wait_for_master(new, 60)
        promoted = time.monotonic() - t
        during = s.delivered_count() - before
        survived = _hooks_read_back(s)
        s.settle()
        notes = [f"master killed; replica promoted {promoted:.1f} s later; the second half accepted "
                 f"{posted_after:.1f} s after the kill", f"{during} pairs delivered meanwhile",
                 f"{survived}/{len(s.hook_org)} webhooks read back from the new master"]
        checks = [("registrations replicated before the kill", replicated),
                  ("every registration read back from the new master", survived == len(s.hook_org)),
                  ("no batch given up", not s.post_stats.get("batches given up")),
                  ("every 503 had Retry-After", not s.post_stats.get("503 without Retry-After")),
                  ("dispatcher survived", d.running)]
        return s.row("9. Redis master killed -9, Sentinel fails over mid-run", checks, notes)
    finally:
        if s is not None:
            s.close()
        sset.cleanup()


def s10_partitions_added(world: World, n: int) -> dict:
    """The runbook's scale-out, mid-run: the event topics' partitions are doubled (kafka-topics --alter) while
    events are posted, and a second dispatcher joins. producer-api starts writing to the new partitions at its next
    metadata refresh (librdkafka's 5 min by default, 1 s here: KAFKA_TOPIC_METADATA_REFRESH_INTERVAL_MS), possibly
    before any dispatcher owns them: those events must be read from the partitions' beginning."""
    s = Stack(world, "s10-partitions-added", api_env={"KAFKA_TOPIC_METADATA_REFRESH_INTERVAL_MS": "1000"})
    try:
        rcv = s.receiver()
        rcv.set_mode("ok", 0.005)
        orgs = s.setup_hooks([(rcv, "a"), (rcv, "b")])
        d1 = s.wait_ready(s.dispatcher("d1"))
        wait_until(lambda: s.assigned(d1) > 0, 90, "d1 holds the event topics' partitions")
        time.sleep(1)
        before = s.assigned(d1)
        batches = 20
        size = max(1, n // batches)
        altered_at = rng.randrange(3, 7)   # batches posted before the alteration: delivery is under way by then
        d2: List[Proc] = []

        def between(bi: int) -> None:
            if bi == altered_at:
                for t in TYPES:
                    world.kafka.add_partitions(s.prefix + t, 2 * PARTITIONS)
            elif bi == altered_at + 2:
                d2.append(s.dispatcher("d2"))  # joins while the group still takes in the new partitions

        s.post(s.events(orgs, size * batches), pause=0.25, between=between, batch=size)
        s.wait_ready(d2[0])
        after = before + len(TYPES) * PARTITIONS
        took = wait_until(lambda: s.assigned(d1) + s.assigned(d2[0]) == after and time.monotonic(), 90,
                          "the new partitions assigned")
        split = (s.assigned(d1), s.assigned(d2[0]))
        s.settle()
        on_new = _events_on_partitions(s, range(PARTITIONS, 2 * PARTITIONS))
        got = set(s.ok_pairs())
        new_pairs = {(eid, path) for (eid, path) in s.expected if eid in on_new}
        notes = [f"partitions {PARTITIONS} → {2 * PARTITIONS} after batch {altered_at} of {batches}; "
                 f"{len(on_new)} events written to the new partitions, {len(new_pairs & got)}/{len(new_pairs)} "
                 f"of their pairs delivered; d1+d2 then held {split[0]}+{split[1]}/{after} partitions"]
        checks = [("events were written to the new partitions", len(on_new) > 0),
                  ("every pair of those events delivered", bool(new_pairs) and new_pairs <= got),
                  ("the new partitions assigned, split between both dispatchers",
                   bool(took) and split[0] > 0 and split[1] > 0),
                  ("both dispatchers survived", d1.running and d2[0].running)]
        return s.row("10. partitions doubled mid-run, a second dispatcher joins", checks, notes)
    finally:
        s.close()


def _events_on_partitions(s: Stack, partitions) -> Set[str]:
    """Ids of the scenario's events that Kafka holds in the given partitions of its event topics (read with kcat)."""
    ids: Set[str] = set()
    for t in TYPES:
        for p in partitions:
            r = subprocess.run([s.world.kcat, "-b", s.world.kafka.bootstrap, "-C", "-t", s.prefix + t, "-p", str(p),
                                "-o", "beginning", "-e", "-q", "-f", "%s\n"], stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=60)
            for line in r.stdout.splitlines():
                try:
                    ids.add(json.loads(line)["id"])
                except (ValueError, KeyError, TypeError):
                    s.post_stats["malformed events"] += 1
    return ids


def _hooks_read_back(s: Stack) -> int:
    """How many of the scenario's webhooks GET /api/v1/webhooks/{id} returns with their URL (each retried for 30 s
    while the API answers nothing)."""
    survived = 0
    for wid, org in s.hook_org.items():
        r = wait_until(lambda: _get_hook(s, org, wid), 30, f"GET webhook {wid}")
        if r.status_code == 200 and r.json().get("url", "").endswith(s.hook_path[wid]):
            survived += 1
    return survived


def _get_hook(s: Stack, org: int, wid: int):
    try:
        r = s.http.get(f"{s.url}/api/v1/webhooks/{wid}", headers={"Authorization": f"Bearer {s.org_token(org)}"},
                       timeout=5)
    except requests.RequestException:
        return None
    return r if r.status_code != 503 else None


def s4_bad_receivers(world: World, n: int, retries: bool) -> dict:
    s = Stack(world, "s4-bad-receivers", retry=retries)
    try:
        modes = [("500", 0.0), ("timeout", 3.0), ("reset", 0.0), ("badcert", 0.0)]
        rcvs = {m: s.receiver() for m, _ in modes}
        for m, delay in modes:
            rcvs[m].set_mode(m, delay)
        orgs = s.setup_hooks([(rcvs[m], m) for m, _ in modes], types=TYPES[:1], orgs=4)
        d = s.wait_ready(s.dispatcher("d1", DELIVERY_TIMEOUT="2s"))
        s.post(s.events(orgs, n, types=TYPES[:1]))
        # every receiver misbehaves for at least 8 s and at least 5 attempts
        t = time.monotonic()
        wait_until(lambda: time.monotonic() - t > 8 and all(
            r.requests_total >= 5 for r in rcvs.values()), 90, "failed attempts at every receiver")
        failed = {m: rcvs[m].requests_total for m, _ in modes}
        for m, _ in modes:
            rcvs[m].set_mode("ok")
        s.settle()
        m = s.metrics(d)
        notes = ["failed attempts before recovery: " + ", ".join(f"{k} {v}" for k, v in failed.items())]
        breaker = sum(v for k, v in m.items() if "breaker" in k and "open" in k and k.endswith("total"))
        if breaker:
            notes.append(f"breaker opened {int(breaker)}×")
        checks = [("dispatcher survived", d.running)]
        return s.row("4. receivers 500 / time out / reset / wrong-name cert, then recover", checks, notes)
    finally:
        s.close()


def s5_group_failover(world: World, n: int) -> dict:
    s = Stack(world, "s5-group-failover")
    try:
        rcv = s.receiver()
        rcv.set_mode("ok", 0.005)
        orgs = s.setup_hooks([(rcv, "a"), (rcv, "b")])
        d1 = s.wait_ready(s.dispatcher("d1"))
        d2 = s.wait_ready(s.dispatcher("d2"))
        wait_until(lambda: s.assigned(d1) > 0 and s.assigned(d2) > 0, 90, "partitions split between both")
        time.sleep(2)
        a1, a2 = s.assigned(d1), s.assigned(d2)
        total = a1 + a2
        victim, survivor = (d1, d2) if rng.random() < 0.5 else (d2, d1)
        events = s.events(orgs, n)
        t, err = poster_thread(lambda: s.post(events, pause=0.05))
        mark = rng.uniform(0.2, 0.6)
        wait_until(lambda: s.delivered_count() >= int(mark * n * HOOKS_PER_TYPE), SETTLE, "delivery under way", 0.05)
        va = s.assigned(victim)
        at = s.delivered_count()
        victim.kill9()
        t.join()
        if err:
            raise err[0]
        took = wait_until(lambda: s.assigned(survivor) == total and time.monotonic(), 90, "survivor takes over")
        s.settle()
        notes = [f"split {a1}+{a2} partitions; killed {victim.name} ({va} partitions) at {at} pairs; "
                 f"{survivor.name} then held {s.assigned(survivor)}/{total}"]
        checks = [("survivor took over every partition", s.assigned(survivor) == total and bool(took)),
                  ("the victim had partitions", va > 0)]
        return s.row("5. two dispatchers in a group, one killed -9", checks, notes)
    finally:
        s.close()


def s6_sigterm(world: World, n: int) -> dict:
    s = Stack(world, "s6-sigterm")
    try:
        rcv = s.receiver()
        rcv.set_mode("ok", 0.05)  # slowish answers: SIGTERM lands with deliveries in flight
        orgs = s.setup_hooks([(rcv, "a"), (rcv, "b")])
        grace = 10.0
        d1 = s.wait_ready(s.dispatcher("d1", SHUTDOWN_GRACE=f"{grace:.0f}s", LOG_LEVEL="info"))
        s.post(s.events(orgs, n))
        delivered_progress(s, rng.uniform(0.1, 0.4), SETTLE, "delivery under way")
        inflight = s.metrics(d1).get("hookd_dispatcher_deliveries_in_flight", -1)
        code, took = d1.term(grace + 30)
        at = s.delivered_count()
        left = len(s.expected) - at
        rcv.set_mode("ok", 0.0)
        d2 = s.wait_ready(s.dispatcher("d2", SHUTDOWN_GRACE=f"{grace:.0f}s"))
        s.settle()
        notes = [f"SIGTERM with {int(inflight)} in flight, {at} pairs delivered: exit {code} after {took:.1f} s "
                 f"(grace {grace:.0f} s); d2 delivered the other {left}"]
        checks = [("exit 0 on SIGTERM", code == 0), (f"exited within SHUTDOWN_GRACE", took <= grace + 1.0),
                  ("deliveries were in flight", inflight > 0),
                  ("work was left for d2", left > 0),
                  ("offsets committed at exit", bool(d1.grep("offsets committed"))),
                  ("d2 survived", d2.running)]
        return s.row("6. SIGTERM during load, then a new dispatcher", checks, notes)
    finally:
        s.close()


def s7_never_recovers(world: World, n: int) -> dict:
    """Opt-in (FAULT_ONLY=7): a receiver that answers 500 for ever. With RETRY_SCHEDULE=1s,1s,1s every pair must
    be on the dead-letter topic after its 4th attempt (~4 s); lost counts what is neither delivered nor dead after
    60 s."""
    s = Stack(world, "s7-never-recovers")
    try:
        rcv = s.receiver()
        rcv.set_mode("500")
        orgs = s.setup_hooks([(rcv, "a"), (rcv, "b")], types=TYPES[:1], orgs=1)
        d = s.wait_ready(s.dispatcher("d1", RETRY_SCHEDULE="1s,1s,1s"))
        s.post(s.events(orgs, n, types=TYPES[:1]))
        s.settle(60)
        m = s.metrics(d)
        opened = sum(v for k, v in m.items() if "breaker" in k and "open" in k)
        notes = [f"RETRY_SCHEDULE=1s,1s,1s (4 attempts), settle 60 s; {rcv.requests_total} attempts made "
                 f"(all-attempts would be {4 * len(s.expected)})"]
        if opened:
            notes.append(f"breaker-open series sum {int(opened)}")
        return s.row("7. a receiver that never recovers: all dead-lettered", [], notes)
    finally:
        s.close()


def s8_impatient_client(world: World, n: int) -> dict:
    """Opt-in (FAULT_ONLY=8): while the broker is down, a client whose HTTP timeout (2 s) is shorter than
    PRODUCE_TIMEOUT (5 s) gives up and repeats the batch with the same ids, as README tells clients to."""
    s = Stack(world, "s8-impatient-client")
    try:
        rcv = s.receiver()
        orgs = s.setup_hooks([(rcv, "a"), (rcv, "b")], types=TYPES[:1], orgs=1)
        d = s.wait_ready(s.dispatcher("d1"))
        world.kafka.stop()
        try:
            s.post(s.events(orgs, n, types=TYPES[:1]), client_timeout=2.0, give_up_after=60)
            time.sleep(8)  # the outage outlasts PRODUCE_TIMEOUT: the abandoned first request ends in 503
        finally:
            world.kafka.start(timeout=240)
        s.wait_ready(d, 120)
        s.settle(45)
        notes = [f"client timeout 2 s < PRODUCE_TIMEOUT 5 s; retried with the same ids: "
                 f"{s.post_stats.get('error None', 0)} client timeouts, then 202"]
        return s.row("8. (opt-in) impatient client while Kafka is down", [], notes)
    finally:
        if not world.kafka.running:
            world.kafka.start(timeout=240)
        s.close()


# ---------------------------------------------------------------------------------------------- table

def table(rows: List[dict], header: str) -> str:
    out = [header, "",
           "| scenario | events accepted | (event, webhook) pairs expected | delivered | duplicated | dead-lettered "
           "| lost | checks | notes |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    for r in rows:
        if "error" in r:
            out.append(f"| {r['scenario']} | – | – | – | – | – | – | **could not run** | {r['error']} |")
            continue
        if r.get("needs_retries"):
            out.append(f"| {r['scenario']} | – | – | – | – | – | – | needs retries | "
                       f"bin/dispatcher has no RETRY_SCHEDULE yet |")
            continue
        failed = [c for c, ok in r["checks"] if not ok]
        checks = ("all passed (" + "; ".join(c for c, _ in r["checks"]) + ")" if r["checks"] else "–") if not failed else \
            "**FAILED: " + "; ".join(failed) + "**"
        lost = f"**{r['lost']}**" if r["lost"] else "0"
        out.append(f"| {r['scenario']} | {r['accepted']} | {r['expected']} | {r['delivered']} | {r['duplicated']} "
                   f"| {r['dead']} | {lost} | {checks} | {'; '.join(r['notes'])} |")
    return "\n".join(out) + "\n"


def write_doc(text: str, full: bool) -> Path:
    if not full:
        PARTIAL.parent.mkdir(parents=True, exist_ok=True)
        PARTIAL.write_text(text)
        return PARTIAL
    begin, end = "<!-- faults:begin -->", "<!-- faults:end -->"
    doc = DOC.read_text() if DOC.exists() else f"# Reliability\n\n{begin}\n{end}\n"
    if begin not in doc:
        doc += f"\n{begin}\n{end}\n"
    head, rest = doc.split(begin, 1)
    _, tail = rest.split(end, 1)
    DOC.write_text(f"{head}{begin}\n{text}{end}{tail}")
    return DOC


def main() -> int:
    for b in ("producer-api", "dispatcher"):
        if not (BIN / b).exists():
            raise SystemExit(f"{BIN / b} missing: run make")
    helptext = subprocess.run([str(BIN / "dispatcher"), "--help"], capture_output=True, text=True).stdout
    retries = "RETRY_SCHEDULE" in helptext
    n1 = FAULT_EVENTS
    nq = max(BATCH, FAULT_EVENTS // 4)
    n4 = max(50, FAULT_EVENTS // 40)
    plan = [(1, lambda w: s1_kill9(w, n1)), (2, lambda w: s2_kafka_stop(w, nq)),
            (3, lambda w: s3_redis_restart(w, nq)), (4, lambda w: s4_bad_receivers(w, n4, retries)),
            (5, lambda w: s5_group_failover(w, nq)), (6, lambda w: s6_sigterm(w, nq)),
            (7, lambda w: s7_never_recovers(w, 100)), (8, lambda w: s8_impatient_client(w, 20)),
            (9, lambda w: s9_redis_failover(w, nq)), (10, lambda w: s10_partitions_added(w, nq))]
    titles = {1: "1. kill -9 the dispatcher ×5 mid-run", 2: "2. Kafka broker stopped 10 s mid-run",
              3: "3. Redis (AOF) restarted mid-run", 4: "4. receivers 500 / time out / reset / wrong-name cert",
              5: "5. two dispatchers in a group, one killed -9", 6: "6. SIGTERM during load",
              7: "7. a receiver that never recovers", 8: "8. (opt-in) impatient client while Kafka is down",
              9: "9. Redis master killed -9, Sentinel fails over",
              10: "10. partitions doubled mid-run, a second dispatcher joins"}
    log(f"seed {SEED}; events: scenario 1 {n1}, scenarios 2/3/5/6/9/10 {nq}, scenario 4 {n4}; retries "
        f"{'on (' + SCHEDULE + ')' if retries else 'NOT in this dispatcher'}")
    world = World()
    rows = []
    try:
        world.start()
        for num, fn in plan:
            if (ONLY and num not in ONLY) or (not ONLY and num in OPT_IN):
                continue
            t = time.monotonic()
            log(f"scenario {titles[num]}")
            if num in (4, 7) and not retries:
                rows.append({"scenario": titles[num], "needs_retries": True})
                continue
            try:
                row = fn(world)
            except Exception as e:  # noqa: BLE001
                traceback.print_exc()
                row = {"scenario": titles[num], "error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
            row["seconds"] = time.monotonic() - t
            log(f"  -> {json.dumps({k: v for k, v in row.items() if k != 'checks'})}")
            rows.append(row)
    finally:
        world.close()
    elapsed = time.monotonic() - T0
    header = (f"hookd fault injection — {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, seed {SEED}, "
              f"{os.cpu_count()} CPUs, {elapsed:.0f} s in all. Sizes: scenario 1 {n1} events "
              f"(FAULT_EVENTS={n1}), scenarios 2/3/5/6/9/10 {nq}, scenario 4 {n4}; "
              f"{len(TYPES)} event types × {ORGS} organizations, {HOOKS_PER_TYPE} webhooks per (organization, type) "
              f"(4 in scenario 4, one per faulty receiver); RETRY_SCHEDULE={SCHEDULE}.")
    text = table(rows, header)
    print(text)
    where = write_doc(text, full=not ONLY)
    log(f"table written to {where.relative_to(REPO)}")
    bad = [r for r in rows if "error" in r or (not r.get("needs_retries") and
                                               (r["lost"] or any(not ok for _, ok in r["checks"])))]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
