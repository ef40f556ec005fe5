"""HTTPS webhook receivers for the end-to-end tests (stdlib + the openssl CLI).

    ca = TestCA.create("/tmp/dir")          # test CA + server cert for 127.0.0.1 / localhost
    with Receiver(ca) as r:                 # HTTPS on 127.0.0.1:<free port>, a thread per request
        r.url("/a")                         # https://127.0.0.1:P/a
        r.configure("/slow", status=200, delay=5.0)
        r.requests()                        # [Request(method, path, headers, body, at), ...]
        r.connections()                     # the first request of each connection
        r.wait_for(lambda reqs: len(reqs) >= 3, timeout=10)

Every request is recorded (method, path, headers with lower-cased names, raw body bytes, monotonic arrival
time, the connection's client port and whether its TLS handshake resumed a session) and answered with the path's configured status (default 200) after its configured delay (default 0).
The server speaks HTTP/1.1 with keep-alive, like a real receiver.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Dict, List, Optional, Tuple


def _openssl(*args: str, cwd: str) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _issue(d: str, name: str, subject: str, extra_ext: str, usage: str) -> None:
    """<name>.pem and <name>.key in d: a certificate of d's CA (ca.pem, ca.key) for subject, extended key usage
    usage, plus the extension lines extra_ext. The .pem appears whole (written aside, then renamed)."""
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
             "-subj", subject, cwd=d)
    with open(os.path.join(d, f"{name}.ext"), "w") as f:
        f.write(extra_ext + "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                f"extendedKeyUsage={usage}\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", f"{name}.pem.tmp", "-days", "2", "-extfile", f"{name}.ext", cwd=d)
    os.replace(os.path.join(d, f"{name}.pem.tmp"), os.path.join(d, f"{name}.pem"))


@dataclass
class TestCA:
    """A throwaway CA and one server certificate (SAN IP:127.0.0.1, DNS:localhost), PEM files in dir."""

    dir: str
    ca_cert: str
    server_cert: str
    server_key: str

    @classmethod
    def create(cls, directory: str) -> "TestCA":
        os.makedirs(directory, exist_ok=True)
        d = directory
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
                 "-days", "2", "-subj", "/CN=hookd test CA", "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
        _issue(d, "server", "/CN=127.0.0.1", "subjectAltName=IP:127.0.0.1,DNS:localhost\n", "serverAuth")
        return cls(d, os.path.join(d, "ca.pem"), os.path.join(d, "server.pem"), os.path.join(d, "server.key"))

    def client_cert(self) -> str:
        """A client certificate of this CA (clientAuth), made on first use; its key is client_key()."""
        path = os.path.join(self.dir, "client.pem")
        if not os.path.exists(path):
            _issue(self.dir, "client", "/CN=hookd test client", "", "clientAuth")
        return path

    def client_key(self) -> str:
        self.client_cert()
        return os.path.join(self.dir, "client.key")


@dataclass
class Request:
    method: str
    path: str
    headers: Dict[str, str]   # lower-cased names
    body: bytes
    at: float                 # time.monotonic() on arrival
    header_list: List[Tuple[str, str]] = field(default_factory=list)  # as sent, in order
    client_port: int = 0      # the TCP connection it came on (the client's port)
    tls_resumed: Optional[bool] = None  # whether that connection's TLS handshake resumed an earlier session


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def _handle(self):
        length = int(self.headers.get("Content-Length", "0") or 0)
        body = self.rfile.read(length) if length else b""
        recv: "Receiver" = self.server.receiver  # type: ignore[attr-defined]
        req = Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body,
                      time.monotonic(), list(self.headers.items()), self.client_address[1],
                      getattr(self.connection, "session_reused", None))
        status, delay, headers = recv._record(req)
        if delay:
            time.sleep(delay)
        if recv.close_after_response:
            self.close_connection = True  # hang up after answering, without a "Connection: close" to warn
        if recv.streams_endlessly(req.path):
            self._stream_endlessly(status)
            return
        payload = b'{"ok":true}' if 200 <= status < 300 else b'{"ok":false}'
        if status == 204 or status == 304 or status < 200:
            # these carry no body (RFC 9110 6.4.1): a client ignores one, and its bytes would then be read as the
            # start of the next response on the connection ("Received HTTP/0.9 when not allowed")
            payload = b""
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            for name, value in headers.items():
                self.send_header(name, value)
            if payload:
                self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            pass  # the client gave up (timeout)

    def _stream_endlessly(self, status: int):
        """status, then a chunked body of 16 KiB chunks until the client hangs up (or 120 s)."""
        self.close_connection = True
        chunk = b"4000\r\n" + b"x" * 0x4000 + b"\r\n"
        try:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                self.wfile.write(chunk)
        except OSError:
            pass  # the client hung up: what the test waits for

    do_POST = _handle
    do_GET = _handle
    do_PUT = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 1024  # the default backlog of 5 drops SYNs under a burst of connections


class Receiver:
    """An HTTPS receiver on 127.0.0.1 (see the module docstring)."""

    def __init__(self, ca: TestCA, port: int = 0, tickets: bool = True):
        self._lock = threading.Condition()
        self._requests: List[Request] = []
        self._config: Dict[str, Tuple[int, float]] = {}
        self._endless: set = set()  # paths answered with a body that never ends
        self.close_after_response = False  # True: close every connection right after its response
        self._httpd = _Server(("127.0.0.1", port), _Handler)
        self._httpd.receiver = self  # type: ignore[attr-defined]
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(ca.server_cert, ca.server_key)
        ctx.set_alpn_protocols(["http/1.1"])
        if not tickets:  # no TLS session resumption at all: no TLS 1.3 tickets, no TLS 1.2 tickets
            ctx.num_tickets = 0
            ctx.options |= ssl.OP_NO_TICKET
        # handshake lazily in the request's own thread, not in the accept loop
        self._httpd.socket = ctx.wrap_socket(self._httpd.socket, server_side=True, do_handshake_on_connect=False)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        daemon=True)

    def start(self) -> "Receiver":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> "Receiver":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def url(self, path: str = "/") -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def configure(self, path: str, status: int = 200, delay: float = 0.0) -> None:
        """Answer requests to path with status after delay seconds."""
        with self._lock:
            self._config[path] = (status, delay)

    def stream_endlessly(self, path: str) -> None:
        """Answer requests to path with their status and then a body that never ends."""
        with self._lock:
            self._endless.add(path)

    def streams_endlessly(self, path: str) -> bool:
        with self._lock:
            return path in self._endless

    def _record(self, req: Request) -> Tuple[int, float, Dict[str, str]]:
        """Records req; returns (status, delay, extra response headers). Subclasses may answer otherwise."""
        with self._lock:
            self._requests.append(req)
            self._lock.notify_all()
            status, delay = self._config.get(req.path, (200, 0.0))
            return status, delay, {}

    def requests(self, path: Optional[str] = None) -> List[Request]:
        with self._lock:
            return [r for r in self._requests if path is None or r.path == path]

    def connections(self) -> List[Request]:
        """The first request of each connection (told apart by client port), by arrival time."""
        first: Dict[int, Request] = {}
        for r in self.requests():
            first.setdefault(r.client_port, r)
        return sorted(first.values(), key=lambda r: r.at)

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()

    def wait_for(self, predicate: Callable[[List[Request]], bool], timeout: float = 15.0) -> bool:
        """Waits until predicate(all requests so far) holds; returns whether it did."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate(list(self._requests)):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(min(left, 0.2))
            return True
