"""Hostile HTTP against bin/producer-api over raw sockets.

Each request must be answered with a 4xx (JSON when the API answers itself) or the connection closed — never
a 5xx, a hang or a crash — and the process must still answer /healthz afterwards. The instance here is private
to this module (KAFKA_BROKERS on a closed port), so a crash is attributed to these tests.

    make && /usr/bin/python3 -m pytest -q tests/api/test_http_hostile.py
"""

import json
import socket
import time

import pytest

from support.producer_api import ApiClient, ProducerApi, closed_port


@pytest.fixture(scope="module")
def api(redis_server):
    a = ProducerApi(redis_server.url, f"127.0.0.1:{closed_port()}")
    try:
        yield a
        assert a.running, f"producer-api died:\n{a.stderr_text()[-3000:]}"
        a.stop()
    finally:
        a.cleanup()


@pytest.fixture(scope="module")
def token(api, new_org):
    return api.token(org=new_org())


@pytest.fixture(autouse=True)
def still_alive(api):
    yield
    assert api.running, f"producer-api died:\n{api.stderr_text()[-3000:]}"
    assert api.healthy(), "producer-api no longer answers /healthz"


def exchange(api, data, timeout=10.0, chunks=None, pause=0.0):
    """Send `data` (or `chunks` with `pause` between them), then read until the server closes or
    `timeout`. Returns the raw bytes received (b"" when closed without an answer)."""
    s = socket.create_connection(("127.0.0.1", api.port), timeout=timeout)
    out = b""
    try:
        try:
            for i, piece in enumerate(chunks if chunks is not None else [data]):
                if i and pause:
                    time.sleep(pause)
                s.sendall(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may refuse early and close
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not b:
                break
            out += b
            if _complete(out):
                break
    finally:
        s.close()
    return out


def _complete(raw):
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return False


def status_of(raw):
    if not raw:
        return None
    line = raw.split(b"\r\n", 1)[0].split()
    assert len(line) >= 2 and line[0].startswith(b"HTTP/1."), raw[:200]
    return int(line[1])


def assert_refused(raw, allowed=range(400, 500)):
    """4xx or closed without an answer."""
    status = status_of(raw)
    assert status is None or status in allowed, raw[:300]
    return status


def body_of(raw):
    return raw.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize("line", [
    b"GARBAGE\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET /healthz\r\n\r\n",
    b"GET /healthz HTTP/1.1 extra\r\nHost: x\r\n\r\n",
    b"\x01\x02\x03\r\n\r\n",
    b"AB\x00CD\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nNo colon header\r\nHost: x\r\n\r\n",
    b"GET " + b"/" + b"a" * 70000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /api/v1/webhooks HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nabcdefg",
])
def test_malformed_request_line_or_headers(api, line):
    assert_refused(exchange(api, line))


def test_request_line_starting_with_nul(api):
    """libmicrohttpd 0.9.75 neither answers nor closes a request line that starts with NUL: the connection is
    held until the 30 s connection timeout. Bounded, but it must never be a 5xx nor stop the others."""
    raw = exchange(api, b"\x00GET /healthz HTTP/1.1\r\n\r\n", timeout=2)
    assert_refused(raw)
    assert api.healthy()


def test_100_kib_header(api, token):
    raw = exchange(api, b"GET /api/v1/webhooks HTTP/1.1\r\nHost: x\r\nauth: " + token.encode() +
                   b"\r\nX-Big: " + b"a" * (100 * 1024) + b"\r\n\r\n")
    assert_refused(raw)


@pytest.mark.parametrize("size_kib", [4, 8, 12, 16])
def test_headers_of_up_to_16_kib_are_served(api, token, size_kib):
    """What proxies and gateways in front of the API add (cookies, tracing, forwarded-for chains, JWTs) stays well
    under 16 KiB; such a request is answered normally, not refused."""
    pad = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"p" * 1000) for i in range(size_kib - 1))
    raw = exchange(api, b"GET /api/v1/webhooks HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer " +
                   token.encode() + b"\r\n" + pad + b"\r\n")
    assert raw.startswith(b"HTTP/1.1 200"), raw[:200]


def test_10000_headers(api, token):
    headers = b"".join(b"X-H%d: v\r\n" % i for i in range(10000))
    raw = exchange(api, b"GET /api/v1/webhooks HTTP/1.1\r\nHost: x\r\nauth: " + token.encode() + b"\r\n" +
                   headers + b"\r\n")
    assert_refused(raw)


@pytest.mark.parametrize("length", [b"-1", b"-100", b"99999999999999999999999999", b"18446744073709551615",
                                    b"abc", b"1 2"])
def test_bad_content_length(api, token, length):
    raw = exchange(api, b"POST /api/v1/webhooks HTTP/1.1\r\nHost: x\r\nauth: " + token.encode() +
                   b"\r\nContent-Type: application/json\r\nContent-Length: " + length + b"\r\n\r\n{}", timeout=5)
    status = assert_refused(raw)
    if status is not None and body_of(raw) and b"json" in raw.partition(b"\r\n\r\n")[0].lower():
        json.loads(body_of(raw))


def test_huge_content_length_is_413_json(api, token):
    raw = exchange(api, b"POST /api/v1/webhooks HTTP/1.1\r\nHost: x\r\nauth: " + token.encode() +
                   b"\r\nContent-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n{}", timeout=5)
    assert status_of(raw) in (None, 413)
    if raw:
        assert json.loads(body_of(raw))["message"]


@pytest.mark.parametrize("body", [
    b"zz\r\nabc\r\n0\r\n\r\n",                        # size not hex
    b"ffffffffffffffffffff\r\nabc\r\n0\r\n\r\n",      # size overflows
    b"5\r\nabc\r\n0\r\n\r\n",                         # chunk shorter than announced
    b"3\r\nabcXX0\r\n\r\n",                           # no CRLF after the data
    b"-1\r\nabc\r\n0\r\n\r\n",                        # negative size
])
def test_invalid_chunked_encoding(api, token, body):
    raw = exchange(api, b"POST /api/v1/webhooks HTTP/1.1\r\nHost: x\r\nauth: " + token.encode() +
                   b"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + body, timeout=4)
    assert_refused(raw, allowed=range(400, 500))


@pytest.mark.parametrize("path", ["/api/v1/webhooks", "/api/v1/events"])
def test_10000_deep_json(api, token, path):
    c = ApiClient(api, token)
    deep = "[" * 10000 + "]" * 10000
    r = c.post(path, data=deep, headers={"Content-Type": "application/json"}, expect=403)
    assert r.body["message"] == "bad data"
    deep_obj = '{"url": ' + "[" * 10000 + "]" * 10000 + ', "event_type": "project.created"}'
    c.post("/api/v1/webhooks", data=deep_obj, headers={"Content-Type": "application/json"}, expect=403)
    deep_event = '{"type": "project.created", "data": {"id": 1, "x": ' + '{"a":' * 10000 + "1" + "}" * 10000 + "}}"
    c.post("/api/v1/events", data=deep_event, headers={"Content-Type": "application/json"}, expect=403)


def test_slow_body_then_close(api, token):
    head = (b"POST /api/v1/webhooks HTTP/1.1\r\nHost: x\r\nauth: " + token.encode() +
            b"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n")
    s = socket.create_connection(("127.0.0.1", api.port), timeout=5)
    try:
        s.sendall(head + b'{"url"')
        # other clients are served while this one stalls
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2.0:
            assert api.healthy()
            time.sleep(0.25)
    finally:
        s.close()
    time.sleep(0.2)
    assert ApiClient(api, token).get("/api/v1/webhooks", expect=200).body["paging"]["total"] == 0


def test_many_stalled_connections_do_not_block(api, token):
    socks = []
    try:
        for _ in range(50):
            s = socket.create_connection(("127.0.0.1", api.port), timeout=5)
            s.sendall(b"POST /api/v1/webhooks HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
            socks.append(s)
        t0 = time.monotonic()
        assert api.healthy()
        ApiClient(api, token).get("/api/v1/webhooks", expect=200)
        assert time.monotonic() - t0 < 3
    finally:
        for s in socks:
            s.close()


def test_logs_stay_json_and_no_startup_warning(api):
    lines = api.log_lines()  # asserts every stderr line is JSON
    assert not [l for l in lines if "EXTERNAL_LOGGER" in str(l.get("detail", ""))], "MHD logger option order"


def test_pipelined_requests(api):
    raw = exchange(api, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n"
                        b"Connection: close\r\n\r\n", timeout=5)
    # at least the first answered 200; nothing else odd
    assert status_of(raw) == 200
