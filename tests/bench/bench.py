#!/usr/bin/env python3
"""`make bench` / `make bench-smoke`: hookd side by side with the machine's limit (stdlib only).

Starts, on loopback only, a private Redis and Kafka broker (tests/support), nginx (HTTP answering 202 for the
ingress baseline; HTTPS with a throwaway test CA answering 204, keep-alive, access log with $msec and the
webhook-id header), bin/producer-api and bin/dispatcher processes, runs every row, and prints a markdown table.
Every figure is the median of RUNS runs and every ratio is taken against a baseline measured in the same run,
so machine noise largely cancels.

    python3 tests/bench/bench.py            # full: 3 runs per row, under 10 minutes on 2 cores
    python3 tests/bench/bench.py --smoke    # CI: 1 run per row, small counts, about 10 s per row

The full run writes the table into docs/BENCHMARKS.md (between the bench:begin/bench:end markers); the smoke
run writes build/bench/BENCHMARKS-smoke.md. Exit status: 0 when every row produced a figure (targets missed or
not), 1 when the harness itself broke (a service did not start, a tool failed, a row measured nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
from support.receiver import TestCA  # noqa: E402
from support.services import KafkaBroker, RedisServer, free_port  # noqa: E402

BIN = Path(os.environ.get("HOOKD_BIN", REPO / "bin"))
BUILD = REPO / "build" / "bench"
PRODUCE = BUILD / "rdkafka_produce"
CURL_POST = BUILD / "curl_post"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


class HarnessError(Exception):
    """The harness broke (as opposed to hookd missing a target)."""


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(cmd, timeout: float, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, **kw)
    if r.returncode != 0:
        raise HarnessError(f"{cmd[0]} failed ({r.returncode}): {r.stderr[-2000:]}{r.stdout[-500:]}")
    return r


def http(method: str, url: str, body=None, token=None, timeout=10.0):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def wait_until(pred, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise HarnessError(f"timed out after {timeout}s waiting for {what}")


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def pct(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, int(round(p / 100 * (len(xs) - 1)))))
    return xs[k]


def proc_stat(pid: int):
    """(cpu seconds utime+stime, rss bytes) of a live process, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)
        with open(f"/proc/{pid}/statm") as f:
            rss = int(f.read().split()[1]) * PAGE
        return cpu, rss
    except (OSError, IndexError, ValueError):
        return None


def machine_ticks():
    """(busy, all) CPU ticks of the whole machine since boot, from /proc/stat's "cpu" line; idle and iowait are
    not busy, steal (time the hypervisor gave to others) is left out of both."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (v + [0] * 8)[:8]
    busy = user + nice + system + irq + softirq
    return busy, busy + idle + iowait


def machine_busy_pct(before, after):
    """How busy the machine was between two machine_ticks(), in % of one core (200 % = two cores full)."""
    busy, total = after[0] - before[0], after[1] - before[1]
    return 100.0 * (os.cpu_count() or 1) * busy / total if total > 0 else None


class Proc:
    def __init__(self, name, argv, env, workdir, raise_nofile=False):
        self.name = name
        self.log_path = Path(workdir) / f"{name}.log"
        self._log = open(self.log_path, "ab")

        def pre():
            if raise_nofile:
                hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
                resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        self.p = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=self._log,
                                  stderr=subprocess.STDOUT, preexec_fn=pre)

    @property
    def pid(self):
        return self.p.pid

    def alive(self):
        return self.p.poll() is None

    def stop(self, timeout=30):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self._log.close()

    def tail(self, n=20):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


# --------------------------------------------------------------------------------------------- the stack

NGINX_CONF = """
worker_processes 1;
worker_rlimit_nofile {nofile};
daemon off;
master_process on;
user root;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log warn;
events {{ worker_connections {wconns}; use epoll; multi_accept on; }}
http {{
    access_log off;
    log_format hook '$msec $http_webhook_id $connection $uri $ssl_session_reused';
    client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi;
    uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
    client_max_body_size 2m; client_body_buffer_size 1m;
    keepalive_requests 100000000; keepalive_timeout 300s;
    server {{
        listen 127.0.0.1:{http_port} backlog=4096;
        location / {{ default_type application/json;
                     return 202 '{{"id":"0193a5f2-7c4e-7b1a-9f3e-2d5c8b7a6e10"}}'; }}
    }}
    server {{
        listen 127.0.0.1:{https_port} ssl backlog=4096;
        ssl_certificate {cert}; ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache shared:bench:10m;
        location /baseline {{ access_log {d}/baseline.log hook buffer=256k flush=100ms; return 204; }}
        location / {{ access_log {d}/deliveries.log hook buffer=256k flush=100ms; return 204; }}
    }}
}}
"""

HANG_SERVER = r"""
import resource, socket, sys, time
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(4096)
held = []
deadline = time.monotonic() + float(sys.argv[2])
s.settimeout(0.5)
while time.monotonic() < deadline:      # accepts and never answers (nor reads), for at most argv[2] s
    try:
        c, _ = s.accept()
    except socket.timeout:
        continue
    if len(held) < hard - 100:
        held.append(c)
    else:
        c.close()
"""


class Stack:
    def __init__(self, workdir: Path):
        self.dir = workdir
        self.redis = RedisServer(tmpdir=str(workdir / "redis"))
        self.kafka = KafkaBroker(data_dir=str(workdir / "kafka"))
        self.ca = None
        self.nginx = None
        self.http_port = free_port()
        self.https_port = free_port()
        self.procs = []
        self.org_tokens = {}
        self.api = None

    def start(self):
        log("starting redis, kafka, nginx")
        self.redis.start()
        # The broker's JVM as Kafka's own bin/kafka-server-start.sh runs it (1 GiB heap, G1 aiming at 20 ms
        # pauses), not the test suites' light default (serial GC, 512 MiB): with that, the broker paused for a
        # young collection about once a second for 13-58 ms under the latency row's load, and those pauses were
        # the latency row's p99 (docs/BENCHMARKS.md, 2026-11-29 23:30). BROKER_JVM_OPTS overrides.
        os.environ.setdefault("BROKER_JVM_OPTS", "-Xms1g -Xmx1g -XX:+UseG1GC -XX:MaxGCPauseMillis=20 "
                              "-XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent")
        self.kafka.start()
        self.ca = TestCA.create(str(self.dir / "ca"))
        nd = self.dir / "nginx"
        nd.mkdir()
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        hard = 65536 if hard == resource.RLIM_INFINITY else hard
        (nd / "nginx.conf").write_text(NGINX_CONF.format(d=nd, nofile=hard, wconns=max(1024, hard - 1000), http_port=self.http_port,
                                                         https_port=self.https_port, cert=self.ca.server_cert,
                                                         key=self.ca.server_key))
        self.nginx = Proc("nginx", ["nginx", "-p", str(nd), "-c", str(nd / "nginx.conf")], dict(os.environ),
                          self.dir, raise_nofile=True)
        self.deliveries_log = nd / "deliveries.log"
        wait_until(lambda: self._port_open(self.https_port) and self._port_open(self.http_port), 10,
                   "nginx\n" + self.nginx.tail())
        self.service_token = self.token("--service")

    @staticmethod
    def _port_open(port):
        import socket
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.3):
                return True
        except OSError:
            return False

    def base_env(self, prefix):
        return dict(os.environ, REDIS_URL=self.redis.url, KAFKA_BROKERS=self.kafka.bootstrap, TOPIC_PREFIX=prefix,
                    ALLOW_PRIVATE_TARGETS="1", LOG_LEVEL="info")

    def token(self, *args):
        r = run([str(BIN / "producer-api"), "token", "create", *args], 30, env=self.base_env("x."))
        return r.stdout.strip().split()[-1]

    @staticmethod
    def what_if_env(env, variable):
        """Adds the KEY=VALUE,... pairs of the environment variable (what-if runs with other settings)."""
        for kv in filter(None, os.environ.get(variable, "").split(",")):
            k, _, v = kv.partition("=")
            env[k.strip()] = v.strip()
        return env

    @staticmethod
    def dispatcher_env_value(key, default):
        """A dispatcher setting as the runs use it: BENCH_DISPATCHER_ENV's value, else the default given."""
        return Stack.what_if_env({}, "BENCH_DISPATCHER_ENV").get(key, default)

    def start_api(self, prefix, name):
        port = free_port()
        # BENCH_API_ENV="KAFKA_LINGER_MS=0": what-if runs of producer-api
        env = self.what_if_env(dict(self.base_env(prefix), LISTEN_ADDR=f"127.0.0.1:{port}"), "BENCH_API_ENV")
        p = Proc(name, [str(BIN / "producer-api")], env, self.dir)
        p.url = f"http://127.0.0.1:{port}"
        self.procs.append(p)

        def ready():
            if not p.alive():
                raise HarnessError(f"{name} exited:\n{p.tail()}")
            try:
                return http("GET", p.url + "/readyz", timeout=2)[0] == 200
            except OSError:
                return False
        wait_until(ready, 60, f"{name} ready")
        # topics are created by the producer's poller; wait until they are listed
        wait_until(lambda: f"{prefix}project.created" in self.kafka.topics(), 30, "topics", interval=0.5)
        if self.api is None:
            self.api = p
        return p

    def start_dispatcher(self, prefix, name, **extra):
        mport = free_port()
        env = dict(self.base_env(prefix), KAFKA_GROUP=f"bench-{uuid.uuid4().hex[:8]}",
                   METRICS_ADDR=f"127.0.0.1:{mport}", RECEIVER_CA_FILE=self.ca.ca_cert, SHUTDOWN_GRACE="2s",
                   **extra)
        # BENCH_DISPATCHER_ENV="MAX_IN_FLIGHT=64,DELIVERY_TIMEOUT=10s": what-if runs with other settings
        self.what_if_env(env, "BENCH_DISPATCHER_ENV")
        p = Proc(name, [str(BIN / "dispatcher")], env, self.dir, raise_nofile=True)
        p.metrics_url = f"http://127.0.0.1:{mport}/metrics"
        self.procs.append(p)
        return p

    def wait_assigned(self, p, timeout=60):
        # the rows' event topics are created by their producer-api (BENCH_API_ENV="TOPIC_PARTITIONS=3": a what-if)
        event_partitions = int(Stack.what_if_env({}, "BENCH_API_ENV").get("TOPIC_PARTITIONS", "12"))

        def assigned():
            if not p.alive():
                raise HarnessError(f"{p.name} exited:\n{p.tail()}")
            try:
                with urllib.request.urlopen(p.metrics_url, timeout=2) as r:
                    m = re.search(r"^hookd_dispatcher_assigned_partitions (\S+)", r.read().decode(), re.M)
                return m is not None and float(m.group(1)) >= 8 * event_partitions  # 8 event topics
            except OSError:
                return False
        wait_until(assigned, timeout, f"{p.name} partitions assigned")

    def org_token(self, org):
        if org not in self.org_tokens:
            self.org_tokens[org] = self.token("--org", str(org))
        return self.org_tokens[org]

    def webhook(self, org, url, event_type):
        st, body = http("POST", self.api.url + "/api/v1/webhooks", {"url": url, "event_type": event_type},
                        token=self.org_token(org))
        if st not in (200, 201):
            raise HarnessError(f"webhook create: {st} {body}")
        return body

    def https(self, path):
        return f"https://127.0.0.1:{self.https_port}{path}"

    def produce(self, topic, n, first_org, orgs, pad, id_prefix, event_type, timeout=180):
        # BENCH_PRODUCE_ENV="batch.size=1000000": librdkafka properties for the pre-loads and the batch baseline
        extra = [a for k, v in self.what_if_env({}, "BENCH_PRODUCE_ENV").items() for a in ("-X", f"{k}={v}")]
        r = run([str(PRODUCE), "-b", self.kafka.bootstrap, "-t", topic, "-n", str(n), "-O", str(first_org),
                 "-o", str(orgs), "-s", str(pad), "-i", id_prefix, "-T", event_type, "-c", "12", *extra], timeout)
        return json.loads(r.stdout.strip().splitlines()[-1])

    def stop(self):
        for p in reversed(self.procs):
            try:
                p.stop(timeout=20)
            except Exception:  # noqa: BLE001
                pass
        if self.nginx:
            self.nginx.stop(timeout=10)
        self.kafka.stop()
        self.redis.stop()


def deliveries_since(path: Path, offset: int, uri_prefix: str):
    """[(msec, webhook_id, connection, resumed)] of access-log lines past offset whose uri starts with uri_prefix;
    resumed: whether the connection's TLS handshake resumed a session (False over plain HTTP)."""
    out = []
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return out
    for line in data.split(b"\n"):
        parts = line.split(b" ")
        if len(parts) == 5 and parts[3].startswith(uri_prefix.encode()):
            out.append((float(parts[0]), parts[1].decode(), parts[2].decode(), parts[4] == b"r"))
    return out


class DeliveryCounter:
    """Counts access-log lines whose uri starts with uri_prefix, reading only what was appended since the last
    call. The dispatch rows poll it twenty times a second while the dispatcher runs: parsing the whole log again
    on every poll (what deliveries_since does) cost ~10 % of a core by the end of a run, CPU taken from the
    dispatcher being measured and not from the wrk baseline."""

    def __init__(self, path: Path, offset: int, uri_prefix: str):
        self.path, self.pos, self.count = path, offset, 0
        self.needle = b" " + uri_prefix.encode()
        self.rest = b""

    def poll(self) -> int:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                data = f.read()
        except FileNotFoundError:
            return self.count
        self.pos += len(data)
        data = self.rest + data
        cut = data.rfind(b"\n") + 1
        self.rest = data[cut:]
        self.count += data.count(self.needle, 0, cut)
        return self.count


def attempt_outcomes(log_path: Path) -> dict:
    """{outcome: count} of the dispatcher's "delivery attempt" log lines, plus the refusals summed in its
    "deliveries refused" lines (LOG_ATTEMPTS=failures logs only the first of each webhook's interval on its own)."""
    counts = {}
    try:
        with open(log_path, "rb") as f:
            for line in f:
                if b'"delivery attempt"' in line:
                    m = re.search(rb'"outcome":"([a-z_]+)"', line)
                    k = m.group(1).decode() if m else "?"
                    counts[k] = counts.get(k, 0) + 1
                elif b'"deliveries refused"' in line:
                    for k in ("breaker_open", "backlog_full"):
                        m = re.search(rb'"' + k.encode() + rb'":(\d+)', line)
                        if m and int(m.group(1)):
                            counts[k] = counts.get(k, 0) + int(m.group(1))
    except OSError:
        pass
    return counts


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


# ---------------------------------------------------------------------------------------------- perf

# BENCH_PERF_RUN: which of the runs perf samples (0 = the first; a later one misses the warm-up's effects)
PERF_RUN = int(os.environ.get("BENCH_PERF_RUN", "0"))


def perf_attach(pid, out: Path):
    """With BENCH_PERF=1: sample pid (cpu-clock, the only event that works in most VMs) into out."""
    if os.environ.get("BENCH_PERF") != "1" or not shutil.which("perf"):
        return None
    # BENCH_PERF_CALLGRAPH=dwarf: call chains through libraries built without frame pointers (libc, libcurl)
    graph = ["--call-graph", os.environ["BENCH_PERF_CALLGRAPH"]] if os.environ.get("BENCH_PERF_CALLGRAPH") else ["-g"]
    p = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "999", *graph, "-p", str(pid), "-o",
                          str(out)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    log(f"perf recording pid {pid} into {out}")
    return p


def perf_detach(p):
    if p is None:
        return
    p.send_signal(signal.SIGINT)
    try:
        p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


# ----------------------------------------------------------------------------------------------- wrk

WRK_LUA = """
wrk.method = "POST"
wrk.body = {body}
{headers}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {{"requests": %d, "duration_us": %d, "non2xx": %d, "errors": %d}}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout))
end
"""


def lua_string(s: str) -> str:
    return json.dumps(s)  # ASCII JSON string escapes are valid Lua string escapes


def write_lua(path: Path, body: str, headers: dict):
    hs = "\n".join(f"wrk.headers[{lua_string(k)}] = {lua_string(v)}" for k, v in headers.items())
    path.write_text(WRK_LUA.format(body=lua_string(body), headers=hs))


def run_measured(cmd, timeout: float):
    """run() a baseline tool (wrk, curl_post) and also return its CPU seconds (utime+stime of the waited-for child,
    from getrusage) and how busy the whole machine was meanwhile (% of one core)."""
    def children_cpu_s():
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        return ru.ru_utime + ru.ru_stime
    cpu0, ticks0 = children_cpu_s(), machine_ticks()
    r = run(cmd, timeout)
    return r, children_cpu_s() - cpu0, machine_busy_pct(ticks0, machine_ticks())


def wrk(url, script, conns, seconds, threads=2):
    r, cpu, busy = run_measured(["wrk", "-t", str(min(threads, conns)), "-c", str(conns), "-d", f"{seconds}s",
                                 "--timeout", "10s", "-s", str(script), url], seconds + 60)
    m = re.search(r"WRKJSON (\{.*\})", r.stdout)
    if not m:
        raise HarnessError(f"wrk gave no summary: {r.stdout[-1000:]}")
    j = json.loads(m.group(1))
    ok = j["requests"] - j["non2xx"]
    j["ok_per_s"] = ok / (j["duration_us"] / 1e6)
    j["cpu_us"] = cpu * 1e6 / max(j["requests"], 1)  # wrk's own CPU per request
    j["busy"] = busy  # the whole machine (wrk, the server and whatever else runs), % of one core
    return j


def curl_alone(url, body: str, headers: dict, ca: str, conns, seconds, threads, work: Path):
    """libcurl's multi interface alone (tests/bench/curl_post.c) POSTing the same body and headers to url with
    the same connection count and as many threads as the dispatcher's delivery threads: what the mandated HTTP
    client itself reaches on this machine, with none of the dispatcher's work (Kafka, signing, bookkeeping)."""
    body_file = work / "curl-post-body.json"
    body_file.write_text(body)
    hs = [a for k, v in headers.items() for a in ("-H", f"{k}: {v}")]
    r, cpu, busy = run_measured([str(CURL_POST), "-u", url, "-c", str(conns), "-s", str(seconds), "-f", str(body_file),
                                 "-a", ca, "-t", str(max(1, min(threads, conns))), *hs, "-H", "Expect:", "-H",
                                 "Accept:"], seconds + 60)
    m = re.search(r"CURLPOSTJSON (\{.*\})", r.stdout)
    if not m:
        raise HarnessError(f"curl_post gave no summary: {r.stdout[-1000:]} {r.stderr[-1000:]}")
    j = json.loads(m.group(1))
    j["ok_per_s"] = j["ok"] / (j["duration_us"] / 1e6)
    j["cpu_us"] = cpu * 1e6 / max(j["requests"], 1)  # curl_post's CPU per request (TLS handshakes included)
    j["busy"] = busy
    return j


# ----------------------------------------------------------------------------------------------- rows

# Event padding is text, not one repeated letter: Kafka compresses record batches (lz4 here), and "x" * 930
# compressed ~60x, so a 256 KiB partition fetch decompressed to tens of MiB in the dispatcher and the memory rows
# measured an input no product sends. Words drawn from a small vocabulary by an LCG compress about as well as
# real JSON (2-3x with lz4). tests/bench/rdkafka_produce.c pads the same way (same words, same generator).
PAD_WORDS = ("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore "
             "et dolore magna aliqua enim ad minim veniam quis nostrud exercitation ullamco laboris nisi aliquip "
             "ex ea commodo consequat duis aute irure in reprehenderit voluptate velit esse cillum fugiat nulla "
             "pariatur excepteur sint occaecat cupidatat non proident sunt culpa qui officia deserunt mollit anim "
             "id est laborum project task hours budget client invoice").split()


def pad_text(i, n):
    """n bytes of word-salad text, a different text for every i (the same as rdkafka_produce.c's)."""
    x = (i * 2654435761 + 12345) & 0xFFFFFFFF
    text = ""
    while len(text) < n:
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        text += (" " if text else "") + PAD_WORDS[(x >> 16) % len(PAD_WORDS)]
    return text[:n]


def event_json(i, event_type, org, pad):
    return {"type": event_type, "organization_id": org, "data": {"id": i, "pad": pad_text(i, pad)}}


PAD_1K = 930  # {"type": ..., "organization_id": ..., "data": {"id": ..., "pad": <930 bytes>}} is ~1 KiB
# wrk opens all its connections (TLS handshakes) up front; above ~1000 on 2 cores the whole run is handshakes.
WRK_MAX_CONNS = 1000


def row_ingress(st: Stack, cfg, res):
    api = st.start_api("ing.", "producer-api-ingress")
    body = json.dumps(event_json(1, "assignment.created", 7, PAD_1K))
    script = st.dir / "ingress.lua"
    write_lua(script, body, {"Content-Type": "application/json", "Authorization": f"Bearer {st.service_token}"})
    # warm-up, not measured: the broker's JIT. Sampled per process under this load, the broker (java) takes 55-75 %
    # of a core for the first ~15 s of produce traffic and 13-16 % from then on, and producer-api's rate climbs
    # with it (28 k, 42 k, 52 k, then 52-56 k req/s in consecutive 5 s runs). Only seconds of produce load count:
    # a longer nginx warm-up left the first measured run 10-20 % below the next two. On the slower AMD VM
    # (2026-12-04) the rate climbed for ~25 s of produce load (consecutive 5 s runs: 10.7 k, 18.8 k, 20.5 k, 25.1 k,
    # then 30-37 k req/s through 70 s), so the warm-up is 30 s.
    wrk(f"http://127.0.0.1:{st.http_port}/api/v1/events", script, 64, cfg.warmup_s)
    wrk(api.url + "/api/v1/events", script, 64, cfg.api_warmup_s)
    base, subj, cpu, busy = [], [], [], []
    for i in range(cfg.runs):
        b = wrk(f"http://127.0.0.1:{st.http_port}/api/v1/events", script, 64, cfg.wrk_s)
        perf = perf_attach(api.pid, st.dir / "perf-producer-api-ingress.data") if i == PERF_RUN else None
        before, machine_before = proc_stat(api.pid), machine_ticks()
        s = wrk(api.url + "/api/v1/events", script, 64, cfg.wrk_s)
        after, machine_after = proc_stat(api.pid), machine_ticks()
        perf_detach(perf)
        if before and after and s["requests"]:
            cpu.append((after[0] - before[0]) * 1e6 / s["requests"])
        pct = machine_busy_pct(machine_before, machine_after)
        if pct is not None:
            busy.append(pct)
        if s["requests"] == 0 or s["non2xx"] > s["requests"] // 2:
            raise HarnessError(f"ingress: producer-api answered {s}")
        base.append(b["ok_per_s"])
        subj.append(s["ok_per_s"])
        log(f"ingress run {i + 1}: api {s['ok_per_s']:.0f} req/s (non-2xx {s['non2xx']}), nginx {b['ok_per_s']:.0f}, "
            f"producer-api {cpu[-1] if cpu else 0:.0f} CPU-us/request, machine {busy[-1] if busy else 0:.0f} % busy")
    res["ingress"] = dict(value=median(subj), base=median(base), cpu_us=median(cpu) if cpu else None,
                          ratio=median([s / b for s, b in zip(subj, base)]), body_bytes=len(body),
                          busy=median(busy) if busy else None)

    # batch: arrays of 500 events, organizations 1..64 (the baseline tool uses the same keys)
    batch = [event_json(i, "assignment.updated", 1 + i % 64, PAD_1K) for i in range(500)]
    bbody = json.dumps(batch)
    bscript = st.dir / "batch.lua"
    write_lua(bscript, bbody, {"Content-Type": "application/json", "Authorization": f"Bearer {st.service_token}"})
    base, subj = [], []
    for i in range(cfg.runs):
        t = st.produce("ing.assignment.updated", cfg.batch_baseline_n, 1, 64, PAD_1K + 20, f"rb{i}",
                       "assignment.updated")
        if t["delivered"] != t["count"]:
            raise HarnessError(f"rdkafka_produce: {t}")
        perf = perf_attach(api.pid, st.dir / "perf-producer-api-batch.data") if i == 0 else None
        s = wrk(api.url + "/api/v1/events", bscript, 8, cfg.wrk_s)
        perf_detach(perf)
        if s["requests"] == 0 or s["non2xx"] > s["requests"] // 2:
            raise HarnessError(f"ingress batch: producer-api answered {s}")
        base.append(t["per_second"])
        subj.append(s["ok_per_s"] * 500)
        log(f"batch run {i + 1}: api {s['ok_per_s'] * 500:.0f} events/s, librdkafka alone {t['per_second']:.0f}")
    res["batch"] = dict(value=median(subj), base=median(base), ratio=median([s / b for s, b in zip(subj, base)]),
                        body_bytes=len(bbody))
    api.stop()


def dispatch_runs(st: Stack, cfg, prefix, etype, orgs, hooks_per_org, n_events, key):
    """Pre-load n_events (1 KiB envelopes), run the dispatcher RUNS times from scratch (fresh consumer group)
    and, after each, wrk the same body at /baseline with the connection count the dispatcher used."""
    for org in orgs:
        for k in range(hooks_per_org):
            st.webhook(org, st.https(f"/{key}/{org}/{k}"), etype)
    t = st.produce(prefix + etype, n_events, orgs[0], len(orgs), PAD_1K, f"{key}", etype)
    if t["delivered"] != n_events:
        raise HarnessError(f"pre-load: {t}")
    expected = n_events * hooks_per_org
    sample_body = json.dumps({"data": {"id": 1, "pad": pad_text(1, PAD_1K)}, "type": etype}, separators=(",", ":"))
    script = st.dir / f"{key}.lua"
    headers = {"Content-Type": "application/json", "User-Agent": "hookd/0.1.0", "webhook-id": "d-12345",
               "webhook-timestamp": str(int(time.time())), "webhook-signature": "v1," + "A" * 43 + "="}
    write_lua(script, sample_body, headers)
    threads = int(st.dispatcher_env_value("DELIVERY_THREADS", "2"))
    out = []
    for i in range(cfg.runs):
        off = file_size(st.deliveries_log)
        d = st.start_dispatcher(prefix, f"dispatcher-{key}{i}")
        perf = perf_attach(d.pid, st.dir / f"perf-dispatcher-{key}.data") if i == 0 else None
        rss, first_cpu, first_seen, first_ticks = [], None, None, None
        deadline = time.monotonic() + cfg.dispatch_timeout
        counter = DeliveryCounter(st.deliveries_log, off, f"/{key}/")
        seen = 0
        while time.monotonic() < deadline:
            if not d.alive():
                raise HarnessError(f"dispatcher exited:\n{d.tail()}")
            s = proc_stat(d.pid)
            if s:
                rss.append(s[1])
            seen = counter.poll()
            if seen and first_cpu is None and s:
                first_cpu, first_seen, first_ticks = s[0], seen, machine_ticks()
            if seen >= expected:
                break
            # every 50 ms: the busy figure's window ends at the poll that sees the last delivery; every 250 ms
            # counted up to a quarter second of idle tail into a run of about two seconds
            time.sleep(0.05)
        end, end_ticks = proc_stat(d.pid), machine_ticks()
        perf_detach(perf)
        parked = metric_value(d, "hookd_dispatcher_deliveries_parked_total")
        holds = metric_value(d, "hookd_dispatcher_backlog_holds_total")
        d.stop(timeout=8)  # SIGKILL after 8 s: a dispatcher buried under timeouts may not drain in time
        got = deliveries_since(st.deliveries_log, off, f"/{key}/")  # parsed once, after the run
        if len(got) < expected:
            log(f"{key} run {i + 1}: only {len(got)}/{expected} deliveries within {cfg.dispatch_timeout}s")
        if len(got) < 2:
            raise HarnessError(f"{key}: no deliveries arrived\n{d.tail()}")
        ts = sorted(g[0] for g in got)
        rate = (len(ts) - 1) / max(ts[-1] - ts[0], 1e-3)
        conns = len({g[2] for g in got})
        # connections whose TLS handshake resumed a session (nginx's $ssl_session_reused, the same for each of a
        # connection's requests)
        resumed = len({g[2] for g in got if g[3]})
        cpu_us = (end[0] - first_cpu) * 1e6 / max(seen - first_seen, 1) if end and first_cpu is not None else None
        wc = max(1, min(conns, WRK_MAX_CONNS))
        time.sleep(2.0)  # let nginx finish closing the dispatcher's connections
        b = wrk(st.https("/baseline"), script, wc, cfg.wrk_s)
        c = curl_alone(st.https("/baseline"), sample_body, headers, st.ca.ca_cert, wc, cfg.wrk_s, threads, st.dir)
        oc = attempt_outcomes(d.log_path)
        failed = sum(v for k, v in oc.items() if k != "success")
        # how busy the machine was while the dispatcher delivered (first delivery seen to the end; sampled every
        # 50 ms, so up to 50 ms of the tail after the last delivery is in it), and during the two baselines: below
        # 200 % on two cores, a side waited rather than ran out of CPU
        busy = machine_busy_pct(first_ticks, end_ticks) if first_ticks is not None else None
        out.append(dict(rate=rate, base=b["ok_per_s"], curl=c["ok_per_s"], conns=conns, wrk_conns=wc, cpu_us=cpu_us,
                        resumed_pct=100.0 * resumed / max(conns, 1),
                        busy=busy, wrk_busy=b["busy"], curl_busy=c["busy"], curl_cpu_us=c["cpu_us"],
                        wrk_cpu_us=b["cpu_us"],
                        rss_max=max(rss) if rss else None, delivered=len(got), expected=expected,
                        failed=failed, outcomes=oc, parked=parked, holds=holds))
        log(f"{key} run {i + 1}: {len(got)}/{expected} in {ts[-1] - ts[0]:.1f}s = {rate:.0f}/s over {conns} conns ({resumed} TLS-resumed), "
            f"nginx+wrk {b['ok_per_s']:.0f}/s ({b['errors']} wrk socket errors), libcurl alone {c['ok_per_s']:.0f}/s "
            f"({c['failed']} failed), {cpu_us or 0:.0f} CPU-us/delivery (libcurl alone {c['cpu_us']:.0f}, wrk "
            f"{b['cpu_us']:.0f} per request), machine busy {busy or 0:.0f} % (wrk {b['busy'] or 0:.0f} %, libcurl alone "
            f"{c['busy'] or 0:.0f} %), RSS max "
            f"{(max(rss) if rss else 0) / 2**20:.1f} MiB, attempt outcomes {oc}, parked {parked}, holds {holds}")
    return out


def metric_in(text, name):
    """The first sample of metric name in Prometheus text (labelled or not), or None when there is none."""
    m = re.search(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)", text, re.M)
    return float(m.group(1)) if m else None


def metric_value(p, name):
    """One sample of a process's /metrics (metric_in), or None when it cannot be read."""
    try:
        with urllib.request.urlopen(p.metrics_url, timeout=2) as r:
            return metric_in(r.read().decode(), name)
    except OSError:
        return None


def dispatch_summary(r, n):
    """The medians of dispatch_runs' per-run figures (a figure that could not be read is left out of its median)."""
    def med(key):
        xs = [x[key] for x in r if x[key] is not None]
        return median(xs) if xs else None
    return dict(value=med("rate"), base=med("base"), curl=med("curl"), ratio=median([x["rate"] / x["base"] for x in r]),
                curl_ratio=median([x["rate"] / x["curl"] for x in r]),
                curl_base_ratio=median([x["curl"] / x["base"] for x in r]), failed=med("failed"),
                delivered=med("delivered"), conns=med("conns"), resumed_pct=med("resumed_pct"), cpu_us=med("cpu_us"), curl_cpu_us=med("curl_cpu_us"),
                wrk_cpu_us=med("wrk_cpu_us"), busy=med("busy"), wrk_busy=med("wrk_busy"), curl_busy=med("curl_busy"),
                rss_max=max(x["rss_max"] or 0 for x in r), n=n, complete=all(x["delivered"] >= x["expected"] for x in r))


def row_dispatch(st: Stack, cfg, res):
    r = dispatch_runs(st, cfg, "dsp.", "project.created", list(range(1001, 1009)), 1, cfg.dispatch_n, "d")
    res["dispatch"] = dispatch_summary(r, cfg.dispatch_n)
    r = dispatch_runs(st, cfg, "fan.", "project.updated", list(range(2001, 2005)), 10, cfg.dispatch_n // 10, "f")
    res["fanout"] = dispatch_summary(r, cfg.dispatch_n // 10)


def latency_run(st: Stack, cfg, prefix, org, key, hang_port=None):
    etype = "time.entry.created"
    api = st.start_api(prefix, f"producer-api-{key}")
    st.webhook(org, st.https(f"/{key}/{org}"), etype)
    hang = None
    if hang_port:
        hang = Proc(f"hang-{key}", [sys.executable, "-c", HANG_SERVER, str(hang_port), str(cfg.latency_s + cfg.warmup_s + 60)],
                    dict(os.environ), st.dir)
        wait_until(lambda: st._port_open(hang_port), 10, "hanging receiver")
        st.webhook(org, f"https://127.0.0.1:{hang_port}/hang", etype)
    d = st.start_dispatcher(prefix, f"dispatcher-{key}")
    st.wait_assigned(d)
    time.sleep(1.0)
    off = file_size(st.deliveries_log)
    out = st.dir / f"{key}-sent.json"
    rss = []
    sender = subprocess.Popen([sys.executable, str(Path(__file__).parent / "latency_sender.py"),
                               api.url + "/api/v1/events", st.service_token, str(cfg.rate), str(cfg.latency_s + cfg.warmup_s),
                               f"{key}{uuid.uuid4().hex[:6]}", etype, str(org), str(out)],
                              stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + cfg.latency_s + cfg.warmup_s + 40
    while sender.poll() is None and time.monotonic() < deadline:
        s = proc_stat(d.pid)
        if s:
            rss.append(s[1])
        time.sleep(0.5)
    if sender.poll() is None:
        sender.kill()
        raise HarnessError("latency sender did not finish")
    if sender.returncode != 0:
        raise HarnessError(f"latency sender failed ({sender.returncode})")
    sent = json.loads(out.read_text())
    time.sleep(3.0)  # stragglers, and nginx's 100 ms log flush
    got = {g[1]: g[0] for g in deliveries_since(st.deliveries_log, off, f"/{key}/")}
    d.stop()
    api.stop()
    if hang:
        hang.stop()
    times = sorted(sent["sent"].items(), key=lambda kv: kv[1])
    if not times or not got:
        raise HarnessError(f"{key}: nothing sent or nothing received ({len(times)} sent, {len(got)} received)")
    t0 = times[0][1] + cfg.warmup_s  # the warm-up seconds are sent but not counted
    times = [(e, ts) for e, ts in times if ts >= t0]
    windows = cfg.windows
    span = cfg.latency_s / windows
    lat_w = [[] for _ in range(windows)]
    missing = 0
    for eid, ts in times:
        w = min(windows - 1, int((ts - t0) / span))
        if eid in got:
            lat_w[w].append(max(0.0, (got[eid] - ts) * 1000))
        else:
            missing += 1
    p50s = [pct(x, 50) for x in lat_w if x]
    p99s = [pct(x, 99) for x in lat_w if x]
    allv = [v for x in lat_w for v in x]
    r = dict(p50=median(p50s), p99=median(p99s), p50_all=pct(allv, 50), p99_all=pct(allv, 99),
             max=max(allv) if allv else None, sent=len(times), received=len(allv), missing=missing,
             rate=sent["rate"], status=sent["status"], lag=sent["max_lag_ms"],
             rss_max=max(rss) if rss else None)
    log(f"{key}: p50 {r['p50']:.1f} ms p99 {r['p99']:.1f} ms (windows p99 {[round(x, 1) for x in p99s]}), "
        f"{r['received']}/{r['sent']} received, rate {r['rate']:.0f}/s, answers {r['status']}, "
        f"sender lag max {r['lag']:.0f} ms")
    return r


def row_latency(st: Stack, cfg, res):
    res["latency"] = latency_run(st, cfg, "lat.", 3001, "l")
    res["isolation"] = latency_run(st, cfg, "iso.", 3002, "i", hang_port=free_port())


EVENT_TYPES = ("project.created", "project.updated", "time.entry.created", "time.entry.updated", "user.created",
               "user.updated", "assignment.created", "assignment.updated")


def backlog_run(st: Stack, cfg, prefix, first_org, etypes):
    """Pre-loads cfg.backlog_n small events, spread evenly over the event types given (8 organizations, a webhook
    each per type), then samples a new dispatcher's RSS every 0.5 s for cfg.backlog_s seconds."""
    orgs = list(range(first_org, first_org + 8))
    for etype in etypes:
        for org in orgs:
            st.webhook(org, st.https(f"/{prefix}/{org}/0"), etype)
    log(f"memory: pre-loading {cfg.backlog_n} small events on {len(etypes)} topic(s)")
    for etype in etypes:
        n = cfg.backlog_n // len(etypes)
        t = st.produce(f"{prefix}.{etype}", n, orgs[0], len(orgs), 16, prefix, etype, timeout=300)
        if t["delivered"] != n:
            raise HarnessError(f"pre-load: {t}")
    off = file_size(st.deliveries_log)
    d = st.start_dispatcher(f"{prefix}.", f"dispatcher-{prefix}")
    samples = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < cfg.backlog_s:
        if not d.alive():
            raise HarnessError(f"dispatcher exited:\n{d.tail()}")
        s = proc_stat(d.pid)
        if s:
            samples.append((time.monotonic() - t0, s[1], s[0]))
        time.sleep(0.5)
    delivered = len(deliveries_since(st.deliveries_log, off, f"/{prefix}/"))
    d.stop(timeout=8)
    rss = [s[1] for s in samples]
    third = max(1, len(rss) // 3)
    r = dict(rss_max=max(rss), rss_first=median(rss[:third]), rss_last=median(rss[-third:]), delivered=delivered,
             seconds=cfg.backlog_s, backlog=cfg.backlog_n, topics=len(etypes),
             cpu_us=(samples[-1][2] - samples[0][2]) * 1e6 / max(delivered, 1))
    log(f"memory, {len(etypes)} topic(s): RSS max {r['rss_max'] / 2**20:.1f} MiB, first third "
        f"{r['rss_first'] / 2**20:.1f}, last third {r['rss_last'] / 2**20:.1f}, {delivered} delivered in "
        f"{cfg.backlog_s}s")
    return r


def row_memory(st: Stack, cfg, res):
    # One topic's backlog (a burst of one event type), then the same number of events over all eight topics (what
    # a dispatcher finds after an outage of its own): each topic has a librdkafka consumer of its own, so the
    # second is where the prefetched data adds up.
    res["memory"] = backlog_run(st, cfg, "mem", 4001, ("user.created",))
    res["memory8"] = backlog_run(st, cfg, "mem8", 4101, EVENT_TYPES)


# ---------------------------------------------------------------------------------------------- report

def fmt(x, unit="", nd=0):
    if x is None:
        return "n/a"
    return f"{x:,.{nd}f}{unit}"


def verdict(ok):
    return "**met**" if ok else "**missed**"


def table(res, cfg):
    rows = ["| row | workload | hookd | baseline, same run | ratio / figure | target | result |",
            "| --- | --- | --- | --- | --- | --- | --- |"]

    def ratio_row(name, key, workload, unit, base_desc, base_note=""):
        r = res.get(key)
        if not r:
            rows.append(f"| {name} | {workload} | n/a | n/a | n/a | ≥ 0.5 × baseline | not measured |")
            return
        rows.append(f"| {name} | {workload} | {fmt(r['value'])} {unit} | {base_desc}: {fmt(r['base'])} {unit}{base_note} | "
                    f"{fmt(r['ratio'], ' ×', 2)} | ≥ 0.5 × | {verdict(r['ratio'] >= 0.5)} |")

    ing = res.get("ingress") or {}
    ratio_row("ingress", "ingress", f"wrk POST 1 KiB event, 64 keep-alive conns, {cfg.wrk_s} s"
              + (f"; machine {ing['busy']:.0f} % busy of {100 * (os.cpu_count() or 1)} % meanwhile (each request "
                 "waits for Kafka's ack: below full means latency-bound)" if ing.get("busy") is not None else ""),
              "req/s", "wrk → nginx 202")
    ratio_row("ingress batch", "batch", f"wrk POST arrays of 500 × 1 KiB events, 8 conns, {cfg.wrk_s} s",
              "events/s", "librdkafka producer alone (same settings)")
    for name, key, what in (("dispatch", "dispatch", "1 webhook each"), ("fan-out", "fanout", "10 webhooks each")):
        r = res.get(key)
        if r:
            ratio_row(name, key, f"{r['n']:,} pre-loaded 1 KiB events, {what}, HTTPS nginx 204; dispatcher used "
                                 f"{fmt(r['conns'])} conns ({fmt(r['resumed_pct'], ' %')} of their TLS handshakes "
                                 f"resumed a session); {fmt(r['delivered'])} delivered within "
                                 f"{cfg.dispatch_timeout} s, {fmt(r['failed'])} failed attempts"
                                 f"{'' if r['complete'] else ' — INCOMPLETE'}",
                      "deliveries/s", f"wrk → same nginx, {fmt(min(r['conns'], WRK_MAX_CONNS))} conns",
                      f"; libcurl multi alone, same conns and threads: {fmt(r['curl'])} deliveries/s = "
                      f"{fmt(r['curl_base_ratio'], ' ×', 2)} wrk (hookd at {fmt(r['curl_ratio'], ' ×', 2)} of it); "
                      f"machine busy (of {100 * (os.cpu_count() or 1)} %): hookd {fmt(r['busy'], ' %')}, wrk "
                      f"{fmt(r['wrk_busy'], ' %')}, libcurl alone {fmt(r['curl_busy'], ' %')}")
        else:
            ratio_row(name, key, what, "", "")
    lat, iso = res.get("latency"), res.get("isolation")
    if lat:
        ok = lat["p50"] <= 5 and lat["p99"] <= 25
        rows.append(f"| latency | {cfg.rate}/s for {cfg.latency_s} s after {cfg.warmup_s} s warm-up, POST → nginx $msec "
                    f"({lat['received']:,}/{lat['sent']:,} received, {lat['rate']:.0f}/s achieved) | p50 "
                    f"{fmt(lat['p50'], ' ms', 1)}, p99 {fmt(lat['p99'], ' ms', 1)} (max {fmt(lat['max'], ' ms', 0)}) "
                    f"| — | median of {cfg.windows} window{'s' if cfg.windows > 1 else ''} | p50 ≤ 5 ms, p99 ≤ 25 ms | {verdict(ok)} |")
    else:
        rows.append("| latency | | n/a | — | n/a | p50 ≤ 5 ms, p99 ≤ 25 ms | not measured |")
    if iso and lat:
        ratio = iso["p99"] / lat["p99"] if lat["p99"] else None
        ok = ratio is not None and ratio <= 1.5 and iso["missing"] == 0
        rows.append(f"| isolation | as latency + 1 webhook (same org, type) whose receiver never answers "
                    f"({iso['received']:,}/{iso['sent']:,} healthy received) | p50 {fmt(iso['p50'], ' ms', 1)}, "
                    f"p99 {fmt(iso['p99'], ' ms', 1)} (max {fmt(iso['max'], ' ms', 0)}) | latency row p99 "
                    f"{fmt(lat['p99'], ' ms', 1)} | {fmt(ratio, ' ×', 2)} | ≤ 1.5 × | {verdict(ok)} |")
    else:
        rows.append("| isolation | | n/a | — | n/a | ≤ 1.5 × | not measured |")
    mem, mem8, dsp = res.get("memory"), res.get("memory8"), res.get("dispatch")
    if mem and mem8 and dsp:
        def flat(m):
            return m["rss_last"] <= m["rss_first"] * 1.25 + 4 * 2**20

        def backlog(m):
            return (f"max {fmt(m['rss_max'] / 2**20, ' MiB', 1)}, first third {fmt(m['rss_first'] / 2**20, ' MiB', 1)}"
                    f" → last third {fmt(m['rss_last'] / 2**20, ' MiB', 1)}")
        ok = max(mem["rss_max"], mem8["rss_max"], dsp["rss_max"]) <= 64 * 2**20 and flat(mem) and flat(mem8)
        rows.append(f"| memory | dispatcher RSS (/proc): during dispatch; a {mem['backlog']:,}-event backlog on one "
                    f"topic, then on all eight, first {mem['seconds']} s of each ({mem['delivered']:,} and "
                    f"{mem8['delivered']:,} delivered) | dispatch max {fmt(dsp['rss_max'] / 2**20, ' MiB', 1)}; "
                    f"one topic {backlog(mem)}; eight topics {backlog(mem8)} | — | — | ≤ 64 MiB, flat | "
                    f"{verdict(ok)} |")
    else:
        rows.append("| memory | | n/a | — | n/a | ≤ 64 MiB, flat | not measured |")
    fan, ing = res.get("fanout"), res.get("ingress")
    what, figures = [], []
    if dsp:
        what.append("dispatcher utime+stime (/proc) per delivery, dispatch row" + ("; fan-out row" if fan else ""))
        figures.append(fmt(dsp["cpu_us"], " CPU-µs", 0) + ("; " + fmt(fan["cpu_us"], " CPU-µs", 0) if fan else ""))
    if ing and ing.get("cpu_us") is not None:
        what.append("producer-api per request, ingress row")
        figures.append(fmt(ing["cpu_us"], " CPU-µs", 0))
    base_cost = []
    for name, r in (("dispatch", dsp), ("fan-out", fan)):
        if r and r.get("curl_cpu_us") is not None:
            base_cost.append(f"{name}: libcurl alone {fmt(r['curl_cpu_us'], ' CPU-µs', 0)}, wrk "
                             f"{fmt(r['wrk_cpu_us'], ' CPU-µs', 0)} per request")
    if what:
        rows.append(f"| cost | {'; '.join(what)} | {'; '.join(figures)} | {'; '.join(base_cost) or '—'} | — | report "
                    f"| reported |")
    else:
        rows.append("| cost | | n/a | — | n/a | report | not measured |")
    return "\n".join(rows)


def machine_notes():
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor()
    def ver(cmd):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return (r.stdout + r.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return "?"
    load = os.getloadavg()
    return (f"{os.cpu_count()} cores ({cpu}), {platform.platform()}; {ver(['nginx', '-v'])}; "
            f"{ver(['wrk', '--version'])}; librdkafka {ver(['pkg-config', '--modversion', 'rdkafka'])}; "
            f"load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


def write_doc(path: Path, text: str):
    begin, end = "<!-- bench:begin -->", "<!-- bench:end -->"
    block = f"{begin}\n{text}\n{end}"
    if path.exists() and begin in path.read_text() and end in path.read_text():
        old = path.read_text()
        new = old[:old.index(begin)] + block + old[old.index(end) + len(end):]
    else:
        new = f"# hookd benchmarks\n\n{block}\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new)


# ---------------------------------------------------------------------------------------------- main

class Cfg:
    def __init__(self, smoke: bool):
        self.smoke = smoke
        self.runs = 1 if smoke else 3
        self.wrk_s = 3 if smoke else 5
        self.batch_baseline_n = 50000 if smoke else 300000
        self.dispatch_n = 5000 if smoke else 100000
        self.dispatch_timeout = 12 if smoke else 25
        self.rate = 1000
        self.latency_s = 5 if smoke else 60
        self.windows = 1 if smoke else 3
        self.warmup_s = 3
        self.api_warmup_s = 3 if smoke else 30
        self.backlog_n = 50000 if smoke else 1000000
        self.backlog_s = 5 if smoke else 30


def build_tool():
    """The two C helpers: rdkafka_produce (pre-loads, the batch baseline) and curl_post (libcurl alone)."""
    for out, name, pkg in ((PRODUCE, "rdkafka_produce.c", "rdkafka"), (CURL_POST, "curl_post.c", "libcurl")):
        src = REPO / "tests" / "bench" / name
        if out.exists() and out.stat().st_mtime >= src.stat().st_mtime:
            continue
        BUILD.mkdir(parents=True, exist_ok=True)
        flags = subprocess.run(["pkg-config", "--cflags", "--libs", pkg], capture_output=True, text=True,
                               check=True).stdout.split()
        run(["cc", "-O2", "-g", "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror", "-o", str(out),
             str(src), *flags, "-lpthread"], 120)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--rows", default="ingress,dispatch,latency,memory",
                    help="comma-separated subset of ingress,dispatch,latency,memory")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    cfg = Cfg(args.smoke)
    for tool in ("nginx", "wrk", "redis-server", "cc", "openssl", "java"):
        if not shutil.which(tool):
            print(f"bench: {tool} not found (make deps)", file=sys.stderr)
            return 1
    for b in ("producer-api", "dispatcher"):
        if not (BIN / b).exists():
            print(f"bench: {BIN / b} missing (run make)", file=sys.stderr)
            return 1
    build_tool()
    workdir = Path(tempfile.mkdtemp(prefix="hookd-bench-", dir="/tmp"))
    st = Stack(workdir)
    res, broken = {}, []
    t_start = time.monotonic()
    try:
        st.start()
        st.start_api("x.", "producer-api-webhooks")
        rows = {"ingress": row_ingress, "dispatch": row_dispatch, "latency": row_latency, "memory": row_memory}
        for name in args.rows.split(","):
            t = time.monotonic()
            try:
                rows[name](st, cfg, res)
            except (HarnessError, subprocess.SubprocessError, OSError, ValueError, KeyError) as e:
                broken.append(f"{name}: {e}")
                log(f"row {name} broke: {e}\n{traceback.format_exc()}")
            log(f"row {name} took {time.monotonic() - t:.0f}s")
    except (HarnessError, RuntimeError, subprocess.SubprocessError, OSError) as e:
        broken.append(f"stack: {e}")
        log(f"stack broke: {e}")
    finally:
        st.stop()
        if not args.keep and not broken:
            shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.monotonic() - t_start
    text = (f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `make {'bench-smoke' if cfg.smoke else 'bench'}`"
            f" in {elapsed:.0f} s; {'1 run' if cfg.runs == 1 else f'median of {cfg.runs} runs'} per row (each column's "
            f"median on its own; the ratio is the median of the per-run ratios, each against a baseline from the "
            f"same run).\n\n" + table(res, cfg) + "\n\nMachine: " + machine_notes() + "\n")
    if broken:
        text += "\nHarness failures: " + "; ".join(broken) + f" (work directory kept: {workdir})\n"
    print(text)
    full = args.rows == ap.get_default("rows") and not os.environ.get("BENCH_DISPATCHER_ENV")
    if cfg.smoke:
        out = BUILD / "BENCHMARKS-smoke.md"
    elif full:
        out = REPO / "docs" / "BENCHMARKS.md"
    else:  # a subset of rows or a what-if: never replaces the full table
        out = BUILD / "BENCHMARKS-partial.md"
        text = f"Rows: {args.rows}; dispatcher environment: {os.environ.get('BENCH_DISPATCHER_ENV', '-')}\n\n" + text
    write_doc(out, text)
    (BUILD / ("results-smoke.json" if cfg.smoke else "results.json" if full else "results-partial.json")).write_text(json.dumps(res, indent=1, default=str))
    log(f"wrote {out}")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
