"""HTTPS webhook receivers that misbehave on demand, for tests/faults (stdlib only).

    r = FaultReceiver(ca, wrong_cert=(cert, key)).start()
    r.url("/a")                 # https://127.0.0.1:P/a
    r.set_mode("500")           # every request: 500
    r.set_mode("timeout", 3.0)  # every request: held 3 s (longer than DELIVERY_TIMEOUT), then closed unanswered
    r.set_mode("reset")         # every request: the TCP connection is reset (SO_LINGER 0), no answer
    r.set_mode("badcert")       # new connections get a certificate for another name (handshake fails)
    r.set_mode("ok")            # every request: 200 (the default); optional delay
    r.ok_pairs()                # Counter {(webhook-id, path): times answered 2xx}

Only answers that were 2xx *and written out completely* are recorded as delivered. Every request, whatever
the answer, is counted in .requests_total and per mode in .answered (for "did the fault really happen"); a
failed TLS handshake counts as answered["tls_failed"].
Switching mode closes every open connection, so keep-alive connections opened in an earlier mode do not
carry over (a certificate change must apply to the next request, not only to new connections).
"""

from __future__ import annotations

import collections
import os
import socket
import ssl
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional, Tuple


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def setup(self):
        super().setup()
        self.server.receiver._track(self.connection, True)  # type: ignore[attr-defined]

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.receiver._track(self.connection, False)  # type: ignore[attr-defined]

    def handle(self):
        # With TLS 1.3 the server's handshake completes before the client has checked the certificate; the
        # client's alert only surfaces on the first read. A connection that ends without one request while the
        # receiver presents the wrong certificate is a failed attempt.
        self.served = 0
        try:
            super().handle()
        except (ssl.SSLError, OSError):
            pass
        recv = self.server.receiver  # type: ignore[attr-defined]
        if self.served == 0 and recv._ctx() is recv._wrong:
            recv._count("tls_failed")

    def do_POST(self):
        recv: "FaultReceiver" = self.server.receiver  # type: ignore[attr-defined]
        self.served += 1
        length = int(self.headers.get("Content-Length", "0") or 0)
        if length:
            self.rfile.read(length)
        mode, delay = recv._mode_now()
        recv._count(mode)
        if mode == "reset":
            try:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                # close the descriptor under the TLS layer at once (linger 0): the peer sees a RST, no
                # close_notify; the detached socket object makes every later close a no-op
                os.close(self.connection.detach())
            except OSError:
                pass
            self.close_connection = True
            return
        if delay:
            time.sleep(delay)
        if mode == "timeout":  # never an answer: the client has given up by now; no 2xx is ever recorded
            self.close_connection = True
            return
        status = 500 if mode == "500" else 200
        payload = b'{"ok":true}' if status == 200 else b'{"ok":false}'
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            self.wfile.flush()
        except OSError:
            return  # the client gave up (timeout): not a delivery
        if status == 200:
            recv._delivered(self.headers.get("webhook-id", ""), self.path)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 1024

    def get_request(self):
        sock, addr = self.socket.accept()
        ctx = self.receiver._ctx()  # type: ignore[attr-defined]
        # handshake lazily in the request's own thread, not in the accept loop
        return ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def handle_error(self, request, client_address):  # handshake failures, resets: expected here
        pass


def _context(cert: str, key: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


class FaultReceiver:
    def __init__(self, ca, wrong_cert: Optional[Tuple[str, str]] = None):
        self._lock = threading.Lock()
        self._good = _context(ca.server_cert, ca.server_key)
        self._wrong = _context(*wrong_cert) if wrong_cert else None
        self._mode, self._delay = "ok", 0.0
        self._pairs: collections.Counter = collections.Counter()
        self.answered: collections.Counter = collections.Counter()
        self.requests_total = 0
        self._conns = set()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.receiver = self  # type: ignore[attr-defined]
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        daemon=True)

    def start(self) -> "FaultReceiver":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._drop_connections()

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def set_mode(self, mode: str, delay: float = 0.0) -> None:
        assert mode in ("ok", "500", "timeout", "reset", "badcert"), mode
        if mode == "badcert" and self._wrong is None:
            raise ValueError("no wrong certificate configured")
        with self._lock:
            self._mode, self._delay = mode, delay
        self._drop_connections()

    # ---- observations ----
    def ok_pairs(self) -> collections.Counter:
        with self._lock:
            return collections.Counter(self._pairs)

    def delivered_count(self) -> int:
        with self._lock:
            return len(self._pairs)

    # ---- internals ----
    def _ctx(self) -> ssl.SSLContext:
        with self._lock:
            return self._wrong if self._mode == "badcert" else self._good

    def _mode_now(self):
        with self._lock:
            mode, delay = self._mode, self._delay
        if mode == "badcert":  # a connection that got the good certificate before the switch
            mode = "reset"
        return mode, delay

    def _count(self, mode: str) -> None:
        with self._lock:
            self.requests_total += 1
            self.answered[mode] += 1

    def _delivered(self, webhook_id: str, path: str) -> None:
        with self._lock:
            self._pairs[(webhook_id, path)] += 1

    def _track(self, conn, add: bool) -> None:
        with self._lock:
            (self._conns.add if add else self._conns.discard)(conn)

    def _drop_connections(self) -> None:
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
