"""Launcher for a real ``bin/producer-api`` in the black-box tests.

    api = ProducerApi(redis_server.url, "127.0.0.1:9092", ALLOW_PRIVATE_TARGETS="1")
    token = api.token(org=7)            # bin/producer-api token create --org 7 (same REDIS_URL)
    requests.get(api.base_url + "/api/v1/webhooks", headers={"auth": token})
    api.revoke(token)
    api.log_lines()                      # parsed stderr JSON lines (asserts every line is JSON)
    api.stop()                           # SIGTERM, asserts exit 0 within 25 s

The binary comes from $HOOKD_BIN (default <repo>/bin). LISTEN_ADDR is 127.0.0.1:<free port>;
stderr goes to a file in a private temporary directory (removed by cleanup()).
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
from pathlib import Path
from typing import List, Optional

from support import memcheck
from support.services import free_port

REPO = Path(__file__).resolve().parents[2]

# Variables of producer-api's config table: never inherited from the caller's environment.
_OWN_VARS = ("LISTEN_ADDR", "REDIS_URL", "KAFKA_BROKERS", "TOPIC_PREFIX", "TOPIC_PARTITIONS",
             "TOPIC_REPLICATION", "PRODUCE_TIMEOUT", "ALLOW_PRIVATE_TARGETS", "HTTP_THREADS", "HTTP_REQUEST_TIMEOUT",
             "SHUTDOWN_GRACE", "LOG_LEVEL", "TOKEN_CACHE_REFRESH")


def bin_dir() -> Path:
    b = Path(os.environ.get("HOOKD_BIN", str(REPO / "bin")))
    return b if b.is_absolute() else REPO / b


def binary() -> Path:
    return bin_dir() / "producer-api"


def closed_port() -> int:
    """A loopback port nobody listens on (free a moment ago)."""
    return free_port()


class ProducerApi:
    """A running bin/producer-api on a free loopback port."""

    def __init__(self, redis_url: str, kafka_brokers: str, allow_private: str = "0",
                 start: bool = True, **env: str):
        self.redis_url = redis_url
        self.kafka_brokers = kafka_brokers
        self.dir = Path(tempfile.mkdtemp(prefix="hookd-producer-api-", dir="/tmp"))
        self.stderr_path = self.dir / "producer-api.stderr"
        self.port = 0
        self.proc: Optional[subprocess.Popen] = None
        self.exit_code: Optional[int] = None
        self.extra_env = {"ALLOW_PRIVATE_TARGETS": str(allow_private), "TOPIC_PARTITIONS": "3",
                          "PRODUCE_TIMEOUT": "3s", "LOG_LEVEL": "info"}
        self.extra_env.update({k: str(v) for k, v in env.items()})
        if start:
            self.start()

    # ---- environment ---------------------------------------------------------------------
    def _base_env(self) -> dict:
        env = {k: v for k, v in os.environ.items()
               if k not in _OWN_VARS and not k.startswith("KAFKA_")}
        env["REDIS_URL"] = self.redis_url
        env["KAFKA_BROKERS"] = self.kafka_brokers
        return env

    def env(self) -> dict:
        env = self._base_env()
        env.update(self.extra_env)
        env["LISTEN_ADDR"] = f"127.0.0.1:{self.port}"
        return env

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> Optional[int]:
        return self.proc.pid if self.proc else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # ---- lifecycle -----------------------------------------------------------------------
    def start(self, timeout: float = 15.0) -> "ProducerApi":
        timeout = memcheck.scaled(timeout)
        path = binary()
        if not os.access(path, os.X_OK):
            raise RuntimeError(f"{path} is missing: run make first")
        for attempt in range(3):
            self.port = free_port()
            err = open(self.stderr_path, "ab")
            try:
                self.proc = subprocess.Popen(memcheck.wrap([str(path)], "producer-api", str(self.dir)), env=self.env(),
                                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
            finally:
                err.close()
            self.exit_code = None
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                if self.healthy():
                    return self
                time.sleep(0.05)
            if self.proc.poll() is None:
                self.kill()
            self.proc = None
            if "cannot listen" not in self.stderr_text():
                break
        raise RuntimeError(f"producer-api did not answer /healthz:\n{self.stderr_text()[-4000:]}")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.base_url + "/healthz", timeout=1) as r:
                return r.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def ready_status(self) -> int:
        try:
            with urllib.request.urlopen(self.base_url + "/readyz", timeout=5) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
        except (OSError, urllib.error.URLError):
            return 0

    def wait_ready(self, timeout: float = 60.0) -> "ProducerApi":
        """Until /readyz answers 200 (Redis and Kafka reachable, topics created)."""
        timeout = memcheck.scaled(timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready_status() == 200:
                return self
            assert self.running, f"producer-api exited:\n{self.stderr_text()[-4000:]}"
            time.sleep(0.2)
        raise AssertionError(f"producer-api not ready after {timeout} s:\n{self.stderr_text()[-4000:]}")

    def stop(self, timeout: float = 25.0) -> int:
        """SIGTERM; asserts a clean exit (0) within `timeout` seconds, well-formed logs, and no sanitizer
        report / valgrind error or definite leak (tests/support/memcheck.py)."""
        timeout = memcheck.scaled(timeout)
        if self.proc is None:
            return self.exit_code if self.exit_code is not None else 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            raise AssertionError(f"producer-api did not exit within {timeout} s of SIGTERM:\n"
                                 f"{self.stderr_text()[-4000:]}")
        pid, self.proc = self.proc.pid, None
        self.exit_code = code
        bad = memcheck.problems("producer-api", code, self.stderr_text(), pid, str(self.dir))
        assert not bad, "\n".join(bad)
        assert code == 0, f"producer-api exited {code} after SIGTERM:\n{self.stderr_text()[-4000:]}"
        self.log_lines()
        return code

    def kill(self) -> None:
        """SIGKILL (no assertions)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        self.exit_code = self.proc.wait()
        self.proc = None

    def cleanup(self) -> None:
        self.kill()
        if os.environ.get("HOOKD_KEEP_TMP", "") in ("", "0"):
            shutil.rmtree(self.dir, ignore_errors=True)

    # ---- logs ----------------------------------------------------------------------------
    def stderr_text(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_lines(self) -> List[dict]:
        """Every stderr line parsed as JSON; asserts that each one is a JSON object."""
        out = []
        for n, line in enumerate(self.stderr_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as e:
                raise AssertionError(f"stderr line {n} is not JSON ({e}): {line[:300]!r}")
            assert isinstance(obj, dict), f"stderr line {n} is not a JSON object: {line[:300]!r}"
            out.append(obj)
        return out

    # ---- token CLI -----------------------------------------------------------------------
    def cli(self, *args: str, timeout: float = 15.0) -> subprocess.CompletedProcess:
        """Run `bin/producer-api ARGS...` with this instance's REDIS_URL."""
        env = self._base_env()
        env["LOG_LEVEL"] = "info"
        argv = memcheck.wrap([str(binary()), *map(str, args)], "producer-api-cli", str(self.dir))
        return subprocess.run(argv, env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=memcheck.scaled(timeout))

    def token(self, org: Optional[int] = None, service: bool = False) -> str:
        """A new API token: for organization `org`, or a service token."""
        if service:
            args = ["token", "create", "--service"]
        else:
            assert org is not None, "token(): give org or service=True"
            args = ["token", "create", "--org", str(org)]
        r = self.cli(*args)
        assert r.returncode == 0, f"token create failed ({r.returncode}): {r.stderr}"
        token = r.stdout.strip()
        assert token and "\n" not in token, f"token create printed {r.stdout!r}"
        return token

    def revoke(self, token: str) -> None:
        r = self.cli("token", "revoke", token)
        assert r.returncode == 0, f"token revoke failed ({r.returncode}): {r.stderr}"

    def __enter__(self) -> "ProducerApi":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        try:
            if exc_type is None and self.running:
                self.stop()  # SIGTERM: exit 0, JSON logs, no sanitizer/valgrind finding (LSan runs at exit)
        finally:
            self.cleanup()


# ---- HTTP client with contract checks ----------------------------------------------------------
import sys as _sys  # noqa: E402

_SUPPORT = str(Path(__file__).resolve().parent)
if _SUPPORT not in _sys.path:
    _sys.path.insert(0, _SUPPORT)
import openapi_check  # noqa: E402

import requests  # noqa: E402


class ApiClient:
    """requests against one ProducerApi; every response must be JSON and (by default) match openapi.yaml.

        c = ApiClient(api, token)
        r = c.post("/api/v1/webhooks", json={...}, expect=200)   # r.body is the parsed JSON
    """

    def __init__(self, api: ProducerApi, token: Optional[str] = None, timeout: float = 15.0):
        self.api = api
        self.token = token
        self.timeout = timeout
        self.session = requests.Session()

    def request(self, method: str, path: str, expect=None, token: Optional[str] = "default",
                validate: bool = True, auth_via: str = "header", **kw) -> requests.Response:
        token = self.token if token == "default" else token
        headers = dict(kw.pop("headers", None) or {})
        params = kw.pop("params", None)
        if token is not None:
            if auth_via == "header":
                headers["auth"] = token
            elif auth_via == "bearer":
                headers["Authorization"] = f"Bearer {token}"
            elif auth_via == "query":
                params = dict(params or {})
                params["auth"] = token
            else:
                raise ValueError(auth_via)
        r = self.session.request(method, self.api.base_url + path, headers=headers, params=params,
                                 timeout=kw.pop("timeout", self.timeout), **kw)
        ctype = r.headers.get("Content-Type", "")
        assert ctype.split(";")[0].strip() == "application/json", \
            f"{method} {path} -> {r.status_code}: Content-Type {ctype!r}, body {r.content[:300]!r}"
        try:
            r.body = r.json()
        except ValueError as e:
            raise AssertionError(f"{method} {path} -> {r.status_code}: body is not JSON ({e}): {r.content[:300]!r}")
        if expect is not None:
            expected = expect if isinstance(expect, (tuple, list, set)) else (expect,)
            assert r.status_code in expected, \
                f"{method} {path}: expected {expect}, got {r.status_code} {r.body!r}"
        if validate:
            openapi_check.validate_response(method, path, r.status_code, r.body, headers=r.headers,
                                            content_type=ctype)
        else:
            openapi_check.validate_instance("error.json", r.body)
        return r

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)
