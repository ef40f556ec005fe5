"""Real service launchers for the hookd black-box tests (owned by the test infrastructure).

Stdlib only. Starts a real ``redis-server`` and a real single-node Apache Kafka 3.9.1 broker
(KRaft, via ``tests/support/kafka.sh``) on free loopback ports, in temporary directories under
/tmp. ``tests/conftest.py`` wraps them in the session fixtures ``redis_server`` and
``kafka_broker``.

    from support.services import RedisServer, KafkaBroker, free_port

    r = RedisServer(); r.start(); r.cli("PING") == "PONG"; r.url  # redis://127.0.0.1:P/0
    k = KafkaBroker(); k.start(); k.create_topic("webhooks.a.b"); k.produce("webhooks.a.b", "v", key="7")
    k.consume("webhooks.a.b", 1)  # [("7", "v", 0, 0)]

Kafka client side: kcat (Debian package ``kcat``) for listing, producing and consuming; the Java
admin tools from the broker's classpath (``kafka.sh run-class``) for creating topics and reading
consumer-group offsets. Without kcat, ``topics()`` falls back to the Java TopicCommand and
``consume()``/``produce()`` raise ``unittest.SkipTest`` (pytest reports a skip).
"""

from __future__ import annotations

import atexit
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
from pathlib import Path
from typing import Dict, List, Optional, Tuple

REPO = Path(__file__).resolve().parents[2]
KAFKA_SH = REPO / "tests" / "support" / "kafka.sh"
TOPIC_COMMAND = "org.apache.kafka.tools.TopicCommand"
GROUP_COMMAND = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"


def _ephemeral_low() -> int:
    """The first port of the kernel's range for outgoing connections (ip_local_port_range; 32768 by default)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_handed_out: set = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago, below the kernel's range for outgoing connections: a
    port from that range (the kernel's own pick for bind(0)) can be taken by any client's connect() before the
    service that was given it listens (a dispatcher's ops port once went to a connection that way: "Address
    already in use", 2026-12-07). Random in [10000, that range), not handed out before by this process."""
    rng = random.SystemRandom()
    high = _ephemeral_low()
    for _ in range(100):
        port = rng.randrange(10000, high) if high > 10001 else 0
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            port = s.getsockname()[1]
        _handed_out.add(port)
        return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:  # the kernel's pick, as before
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def kcat_path() -> Optional[str]:
    return shutil.which("kcat") or shutil.which("kafkacat")


def terminate(proc: Optional[subprocess.Popen], timeout: float = 10.0) -> None:
    """SIGTERM proc and wait for it; SIGKILL after timeout seconds. None or an ended process: nothing to do."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _tail(path: Path, n: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


class RedisServer:
    """A private redis-server on a free loopback port, no persistence. With tls (a TestCA: its server certificate
    and CA), it takes TLS connections only (no plain port) and its url is rediss://; client_env() is what a client
    needs besides the URL (REDIS_CA_FILE)."""

    def __init__(self, port: Optional[int] = None, tmpdir: Optional[str] = None, tls=None,
                 client_certs: bool = False, extra_args: Optional[List[str]] = None):
        self.extra_args = list(extra_args or [])  # more redis-server arguments (e.g. --replicaof HOST PORT)
        self.tls = tls
        self.client_certs = client_certs  # with tls: clients must present a certificate of the CA (tls-auth-clients)
        self._fixed_port = port is not None
        self.port = port or free_port()
        self._own_tmp = tmpdir is None
        self.dir = Path(tmpdir or tempfile.mkdtemp(prefix="hookd-redis-", dir="/tmp"))
        self.proc: Optional[subprocess.Popen] = None
        atexit.register(self.stop)

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def url(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://127.0.0.1:{self.port}/0"

    def client_env(self) -> Dict[str, str]:
        return {"REDIS_CA_FILE": self.tls.ca_cert} if self.tls else {}

    @property
    def log_path(self) -> Path:
        return self.dir / "redis.log"

    def _spawn(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                ["redis-server", *self._listen_args(),
                 "--save", "", "--appendonly", "no", "--dir", str(self.dir),
                 "--daemonize", "no", *self.extra_args],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        finally:
            log.close()

    def _listen_args(self) -> List[str]:
        if not self.tls:
            return ["--port", str(self.port), "--bind", "127.0.0.1"]
        # 127.0.0.2 too: an address its certificate (IP:127.0.0.1, DNS:localhost) does not name
        return ["--bind", "127.0.0.1", "127.0.0.2", "--port", "0", "--tls-port", str(self.port),
                "--tls-cert-file", self.tls.server_cert,
                "--tls-key-file", self.tls.server_key, "--tls-ca-cert-file", self.tls.ca_cert,
                "--tls-auth-clients", "yes" if self.client_certs else "no"]

    def start(self, timeout: float = 10.0) -> "RedisServer":
        if self.running:
            return self
        for attempt in range(3):
            self._spawn()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                if port_open(self.port) and self._ping():
                    return self
                time.sleep(0.05)
            self._kill()
            # Lost a race for the port? Pick another one (unless the caller fixed it).
            if self._fixed_port or "Address already in use" not in _tail(self.log_path):
                break
            self.port = free_port()
        raise RuntimeError(f"redis-server did not start on port {self.port}:\n{_tail(self.log_path)}")

    def _ping(self) -> bool:
        try:
            return self.cli("PING") == "PONG"
        except (subprocess.SubprocessError, OSError):
            return False

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def cli(self, *args: str, timeout: float = 10.0) -> str:
        """Run ``redis-cli -h 127.0.0.1 -p P ARGS...``; returns stdout, stripped.

        Raises CalledProcessError on a non-zero exit. Redis error replies come back as text
        (``ERR ...``), as redis-cli prints them.
        """
        out = subprocess.run(
            ["redis-cli", "-h", "127.0.0.1", "-p", str(self.port),
             *(["--tls", "--cacert", self.tls.ca_cert] if self.tls else []),
             *(["--cert", self.tls.client_cert(), "--key", self.tls.client_key()] if self.client_certs else []),
             *map(str, args)],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=True)
        return out.stdout.decode(errors="replace").strip()

    def freeze(self) -> None:
        """Stop the server process (SIGSTOP): connections stay open, commands get no answer, as in a stall.
        Unlike ``CLIENT PAUSE``, it lasts until thaw(), however long the test needs it."""
        assert self.running
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """End a freeze() (SIGCONT). Idempotent."""
        if self.running:
            self.proc.send_signal(signal.SIGCONT)

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a frozen server would not act on SIGTERM
        terminate(self.proc)
        self.proc = None

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s). Idempotent."""
        self._kill()

    def restart(self) -> "RedisServer":
        """Stop and start again on the same port. The data is gone (no persistence)."""
        self.stop()
        return self.resume()

    def resume(self) -> "RedisServer":
        """Start again on the same port after stop() (clients reconnect to the same URL)."""
        self._fixed_port = True
        return self.start()

    def cleanup(self) -> None:
        """Stop and remove the temporary directory (if this object created it)."""
        self.stop()
        if self._own_tmp:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.cleanup()


class RedisSentinelSet:
    """Redis kept available by Sentinel, as the Bitnami chart's "replication with sentinel" runs it: a master, a
    replica of it and one redis-sentinel watching them (quorum 1, a master is down after 1 s of silence), each a
    private process on loopback. url is the master's redis:// URL as it was at start (what a client that knows no
    sentinel keeps using); client_env() names the sentinel and the master's name, so hookd asks which one is master
    now. cli() runs on the current master. With tls (a TestCA) all three take TLS only, replication included, and
    the URL is rediss://."""

    NAME = "hookd"

    def __init__(self, tls=None):
        self.tls = tls
        self.first = RedisServer(tls=tls)
        self.second: Optional[RedisServer] = None
        self.sentinel_port = free_port()
        self.dead_sentinel_port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="hookd-sentinel-", dir="/tmp"))
        self.proc: Optional[subprocess.Popen] = None
        atexit.register(self.cleanup)

    @property
    def servers(self) -> List[RedisServer]:
        return [r for r in (self.first, self.second) if r is not None]

    @property
    def url(self) -> str:
        return self.first.url

    def client_env(self) -> Dict[str, str]:
        # a sentinel nobody runs comes first: clients must go on to the next one
        return {"REDIS_SENTINELS": f"127.0.0.1:{self.dead_sentinel_port},127.0.0.1:{self.sentinel_port}",
                "REDIS_SENTINEL_MASTER": self.NAME, **self.first.client_env()}

    def start(self) -> "RedisSentinelSet":
        self.first.start()
        self.second = RedisServer(tls=self.tls, extra_args=["--replicaof", "127.0.0.1", str(self.first.port),
                                                            *(["--tls-replication", "yes"] if self.tls else [])])
        self.second.start()
        self.wait_in_sync(self.second)
        conf = self.dir / "sentinel.conf"
        listen = (f"port 0\ntls-port {self.sentinel_port}\ntls-cert-file {self.tls.server_cert}\n"
                  f"tls-key-file {self.tls.server_key}\ntls-ca-cert-file {self.tls.ca_cert}\ntls-auth-clients no\n"
                  f"tls-replication yes\n" if self.tls else f"port {self.sentinel_port}\n")
        conf.write_text(f"{listen}bind 127.0.0.1\ndir {self.dir}\n"
                        f"sentinel monitor {self.NAME} 127.0.0.1 {self.first.port} 1\n"
                        f"sentinel down-after-milliseconds {self.NAME} 1000\n"
                        f"sentinel failover-timeout {self.NAME} 10000\n")
        log = open(self.dir / "sentinel.log", "ab")
        try:
            self.proc = subprocess.Popen(["redis-server", str(conf), "--sentinel"], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT)
        finally:
            log.close()
        # a forced failover needs a replica the sentinel has heard from
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                replicas = self.sentinel_cli("SENTINEL", "REPLICAS", self.NAME)
                if f"\n{self.second.port}\n" in f"\n{replicas}\n" and "disconnected" not in replicas:
                    return self
            except (subprocess.SubprocessError, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the sentinel did not see the replica:\n{_tail(self.dir / 'sentinel.log')}")

    @staticmethod
    def wait_in_sync(replica: RedisServer, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "master_link_status:up" in replica.cli("INFO", "replication"):
                return
            time.sleep(0.05)
        raise RuntimeError(f"replica on {replica.port} did not sync:\n{_tail(replica.log_path)}")

    def sentinel_cli(self, *args: str) -> str:
        out = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.sentinel_port),
                              *(["--tls", "--cacert", self.tls.ca_cert] if self.tls else []), *map(str, args)],
                             stdin=subprocess.DEVNULL, capture_output=True, timeout=10, check=True)
        return out.stdout.decode(errors="replace").strip()

    def master_port(self) -> int:
        """The master's port, as the sentinel says."""
        return int(self.sentinel_cli("SENTINEL", "get-master-addr-by-name", self.NAME).split()[1])

    def master(self) -> RedisServer:
        port = self.master_port()
        return next(r for r in self.servers if r.port == port)

    def cli(self, *args: str, timeout: float = 10.0) -> str:
        return self.master().cli(*args, timeout=timeout)

    def wait_for_master(self, server: RedisServer, timeout: float = 30.0) -> None:
        """Until the sentinel names server as master and server says so itself (ROLE)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.master_port() == server.port and server.cli("ROLE").split()[0] == "master":
                    return
            except (subprocess.SubprocessError, OSError, ValueError, IndexError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{server.port} did not become master:\n{_tail(self.dir / 'sentinel.log')}")

    def failover(self) -> RedisServer:
        """A failover the sentinel runs now (SENTINEL FAILOVER): the replica becomes master and the old master its
        replica, whose clients the sentinel disconnects. Returns the new master once it is one."""
        old = self.master()
        new = next(r for r in self.servers if r is not old)
        self.sentinel_cli("SENTINEL", "FAILOVER", self.NAME)
        self.wait_for_master(new)
        return new

    def cleanup(self) -> None:
        terminate(self.proc)
        self.proc = None
        for r in self.servers:
            r.cleanup()
        shutil.rmtree(self.dir, ignore_errors=True)


class AofRedis(RedisServer):
    """RedisServer with append-only persistence, as deploy/ runs it: the data survives stop() and resume()."""

    def _spawn(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        log_f = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "yes", "--appendfsync", "everysec", "--dir", str(self.dir),
                 "--daemonize", "no"],
                stdin=subprocess.DEVNULL, stdout=log_f, stderr=subprocess.STDOUT)
        finally:
            log_f.close()


class KafkaBroker:
    """A real single-node Kafka 3.9.1 broker (KRaft) run by tests/support/kafka.sh.

    ``stop()`` followed by ``start()`` reuses the same ports and data directory, so topics,
    messages and committed offsets survive (use it to test reconnects).
    """

    def __init__(self, data_dir: Optional[str] = None, port: Optional[int] = None,
                 controller_port: Optional[int] = None, env: Optional[Dict[str, str]] = None):
        """env: kafka.sh's BROKER_* settings, e.g. a SASL_SSL listener (tests/support/kafka.sh)."""
        self._env = dict(os.environ, **(env or {}))
        self._fixed_ports = port is not None
        self.port = port or free_port()
        self.controller_port = controller_port or free_port()
        while self.controller_port == self.port:
            self.controller_port = free_port()
        self._own_tmp = data_dir is None
        self.dir = Path(data_dir or tempfile.mkdtemp(prefix="hookd-kafka-", dir="/tmp"))
        self._started_once = False
        atexit.register(self.stop)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.dir / "kafka.log"

    @property
    def pid(self) -> Optional[int]:
        try:
            return int((self.dir / "kafka.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    @property
    def running(self) -> bool:
        pid = self.pid
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True

    def client_env(self) -> Dict[str, str]:
        """The KAFKA_* settings hookd's services need besides KAFKA_BROKERS: none for the PLAINTEXT listener."""
        return {}

    def _kafka_sh(self, *args: str, timeout: float) -> subprocess.CompletedProcess:
        return subprocess.run(["sh", str(KAFKA_SH), *args], stdin=subprocess.DEVNULL, env=self._env,
                              capture_output=True, text=True, timeout=timeout)

    def start(self, timeout: float = 120.0) -> "KafkaBroker":
        """Start (or restart) the broker; returns when it accepts clients."""
        attempts = 1 if (self._fixed_ports or self._started_once) else 3
        for attempt in range(attempts):
            r = self._kafka_sh("start", str(self.dir), str(self.port), str(self.controller_port),
                               timeout=timeout)
            if r.returncode == 0:
                self._started_once = True
                return self
            if attempt + 1 < attempts and "Address already in use" in r.stderr:
                # Lost a race for a port before the first start: fresh ports and storage.
                shutil.rmtree(self.dir / "logs", ignore_errors=True)
                self.port, self.controller_port = free_port(), free_port()
                continue
            break
        raise RuntimeError(f"kafka broker failed to start (exit {r.returncode}):\n{r.stdout}{r.stderr}")

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the broker (SIGTERM, SIGKILL after 30 s). Idempotent; data is kept."""
        if not (self.dir / "kafka.pid").exists():
            return
        r = self._kafka_sh("stop", str(self.dir), timeout=timeout)
        if r.returncode != 0:
            pid = self.pid
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass

    def restart(self) -> "KafkaBroker":
        self.stop()
        return self.start()

    def kill(self) -> None:
        """Crash the broker (SIGKILL). A following start() takes ~8 s: the controller refuses the
        new incarnation until the old broker session (4 s) expires."""
        pid = self.pid
        if pid and self.running:
            os.kill(pid, signal.SIGKILL)
            for _ in range(100):
                if not self.running:
                    break
                time.sleep(0.05)
        (self.dir / "kafka.pid").unlink(missing_ok=True)

    def cleanup(self) -> None:
        """Stop and remove the data directory (if this object created it). A directory about to be removed needs
        no clean shutdown: the broker is killed. A graceful stop closed every partition log of the session first,
        15.8 s at the end of tests/e2e (hundreds of partitions: topics per test), paid by each suite run in CI."""
        if self._own_tmp:
            self.kill()
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            self.stop()

    def __enter__(self) -> "KafkaBroker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.cleanup()

    # ---- client helpers -------------------------------------------------------------------

    def run_class(self, cls: str, *args: str, timeout: float = 60.0,
                  check: bool = True) -> subprocess.CompletedProcess:
        """Run a Kafka Java main class with the broker's classpath (kafka.sh run-class)."""
        r = self._kafka_sh("run-class", cls, *args, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"{cls} {' '.join(args)} failed (exit {r.returncode}):\n{r.stdout}{r.stderr}")
        return r

    def create_topic(self, name: str, partitions: int = 1, config: Optional[dict] = None) -> None:
        """Create a topic (replication factor 1); no error if it already exists."""
        args = ["--bootstrap-server", self.bootstrap, "--create", "--if-not-exists",
                "--topic", name, "--partitions", str(partitions), "--replication-factor", "1"]
        for k, v in (config or {}).items():
            args += ["--config", f"{k}={v}"]
        self.run_class(TOPIC_COMMAND, *args)

    def add_partitions(self, name: str, partitions: int) -> None:
        """Raise a topic's partition count to `partitions` (kafka-topics --alter), as an operator scaling out does."""
        self.run_class(TOPIC_COMMAND, "--bootstrap-server", self.bootstrap, "--alter", "--topic", name,
                       "--partitions", str(partitions))

    def delete_topic(self, name: str) -> None:
        self.run_class(TOPIC_COMMAND, "--bootstrap-server", self.bootstrap, "--delete",
                       "--if-exists", "--topic", name)

    def topics(self, include_internal: bool = False) -> List[str]:
        """Sorted topic names (``__consumer_offsets`` etc. only with include_internal)."""
        kcat = kcat_path()
        if kcat:
            import json
            r = subprocess.run([kcat, "-b", self.bootstrap, "-L", "-J", "-m", "10"],
                               stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=30, check=True)
            names = [t["topic"] for t in json.loads(r.stdout).get("topics", [])]
        else:
            r = self.run_class(TOPIC_COMMAND, "--bootstrap-server", self.bootstrap, "--list")
            names = [line.strip() for line in r.stdout.splitlines() if line.strip()]
        if not include_internal:
            names = [n for n in names if not n.startswith("__")]
        return sorted(names)

    def produce(self, topic: str, value, key=None, partition: Optional[int] = None,
                timeout: float = 30.0) -> None:
        """Produce one message (str or bytes) with kcat."""
        kcat = self._need_kcat()
        if isinstance(value, str):
            value = value.encode()
        if key is not None and isinstance(key, str):
            key = key.encode()
        # kcat -P reads one message per delimiter; use a delimiter that cannot occur in JSON text
        # and frame the key with -K, so values may contain newlines.
        delim = b"\x1e"  # ASCII record separator
        ksep = b"\x1f"   # ASCII unit separator
        cmd = [kcat, "-b", self.bootstrap, "-P", "-t", topic, "-D", delim.decode(),
               "-X", "enable.idempotence=true"]
        if key is not None:
            cmd += ["-K", ksep.decode()]
            payload = key + ksep + value + delim
        else:
            payload = value + delim
        if partition is not None:
            cmd += ["-p", str(partition)]
        subprocess.run(cmd, input=payload, capture_output=True, timeout=timeout, check=True)

    def consume(self, topic: str, count: int, timeout: float = 10.0, offset: str = "beginning",
                raw: bool = False) -> List[Tuple[Optional[str], str, int, int]]:
        """Read up to ``count`` messages of ``topic`` from ``offset`` (default: the beginning),
        waiting at most ``timeout`` seconds. Returns [(key, value, partition, offset), ...] in
        arrival order (per partition in offset order); key is None for a null key. Strings are
        UTF-8 decoded unless raw=True (then bytes). No consumer group is used, so nothing is
        committed. Fewer than ``count`` items means the timeout hit.
        """
        kcat = self._need_kcat()
        # Binary-safe framing: "<partition> <offset> <keylen> <valuelen>\n<key><value>".
        cmd = [kcat, "-b", self.bootstrap, "-C", "-t", topic, "-o", str(offset), "-c", str(count),
               "-u", "-q", "-f", "%p %o %K %S\n%k%s"]
        try:
            r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
            out = r.stdout
        except subprocess.TimeoutExpired as e:
            out = e.stdout or b""
        return _parse_kcat(out, raw)[:count]

    def group_offsets(self, group: str) -> dict:
        """Committed offsets of a consumer group: {(topic, partition): offset}."""
        r = self.run_class(GROUP_COMMAND, "--bootstrap-server", self.bootstrap, "--describe",
                           "--offsets", "--group", group, check=False)
        result = {}
        for line in r.stdout.splitlines():
            f = line.split()
            if len(f) >= 4 and f[0] == group and f[2].isdigit():
                result[(f[1], int(f[2]))] = int(f[3]) if f[3].lstrip("-").isdigit() else None
        return result

    def _need_kcat(self) -> str:
        kcat = kcat_path()
        if not kcat:
            raise unittest.SkipTest("kcat is not installed (run: make deps)")
        return kcat


def _parse_kcat(out: bytes, raw: bool) -> list:
    msgs = []
    pos = 0
    while pos < len(out):
        nl = out.find(b"\n", pos)
        if nl < 0:
            break
        head = out[pos:nl].split()
        if len(head) != 4:
            break
        part, off, klen, vlen = (int(x) for x in head)
        pos = nl + 1
        key = None
        if klen >= 0:
            key = out[pos:pos + klen]
            pos += klen
        value = out[pos:pos + max(vlen, 0)]
        pos += max(vlen, 0)
        if not raw:
            key = key.decode(errors="replace") if key is not None else None
            value = value.decode(errors="replace")
        msgs.append((key, value, part, off))
    return msgs
