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


def exchange(api, data, timeout=10.0, chunks=None, pause=0.0, until_closed=False):
    """Send `data` (or `chunks` with `pause` between them), then read until the server closes or
    `timeout` (or, unless until_closed, until one whole response is in). Returns the raw bytes received (b""
    when closed without an answer)."""
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
            if not until_closed and _complete(out):
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
    """(libmicrohttpd, before 2026-12-03, held such a connection unanswered until its 30 s timeout.)"""
    raw = exchange(api, b"\x00GET /healthz HTTP/1.1\r\n\r\n", timeout=2)
    assert status_of(raw) == 400, raw[:200]
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


def test_logs_stay_json(api):
    lines = api.log_lines()  # asserts every stderr line is JSON
    assert lines


def test_pipelined_requests(api):
    raw = exchange(api, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n"
                        b"Connection: close\r\n\r\n", timeout=5, until_closed=True)
    # both answered, in order, on the one connection; then closed as the second asked
    assert raw.count(b"HTTP/1.1 200 OK\r\n") == 2, raw[:600]
    assert raw.rstrip().endswith(b"}"), raw[-200:]


def read_response(s, timeout=5.0):
    """One response (head + Content-Length body) from socket s; returns (status, headers dict, body). Bytes past
    it (a pipelined next response) stay for the next call."""
    s.settimeout(timeout)
    data = _leftover.pop(s.fileno(), b"")
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        assert chunk, f"closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(b":") for l in lines[1:])}
    length = int(headers.get(b"content-length", b"0"))
    while len(body) < length:
        chunk = s.recv(65536)
        assert chunk, "closed inside a body"
        body += chunk
    if len(body) > length:
        _leftover[s.fileno()] = body[length:]
    return int(lines[0].split()[1]), headers, body[:length]


_leftover = {}


def webhook_body(n):
    return json.dumps({"url": f"https://example.com/hook/{n}", "event_type": "user.created"}).encode()


def test_chunked_body_is_decoded(api, token):
    body = webhook_body("chunked")
    chunks = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(body[i:i + 7]), body[i:i + 7]) for i in range(0, len(body), 7))
    s = socket.create_connection(("127.0.0.1", api.port), timeout=5)
    try:
        s.sendall(b"POST /api/v1/webhooks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token.encode() +
                  b"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks +
                  b"0\r\nX-Trailer: t\r\n\r\n" + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, reply = read_response(s)
        assert status == 200, reply
        created = json.loads(reply)
        assert created["url"] == "https://example.com/hook/chunked" and created["event_type"] == "user.created"
        status, _, reply = read_response(s)  # the request after the trailers is read from where the body ended
        assert status == 200 and json.loads(reply)["status"] == "ok", reply
    finally:
        s.close()
    c = ApiClient(api, token)
    c.delete(f"/api/v1/webhooks/{created['id']}", expect=(200, 204))


def test_expect_100_continue(api, token):
    body = webhook_body("expect")
    s = socket.create_connection(("127.0.0.1", api.port), timeout=5)
    try:
        s.sendall(b"POST /api/v1/webhooks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token.encode() +
                  b"\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n"
                  % len(body))
        s.settimeout(5)
        interim = b""
        while len(interim) < 25:
            piece = s.recv(25 - len(interim))
            assert piece, interim
            interim += piece
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n", interim  # asked for the body before it is sent
        s.sendall(body)
        status, _, reply = read_response(s)
        assert status == 200, reply
        created = json.loads(reply)
    finally:
        s.close()
    ApiClient(api, token).delete(f"/api/v1/webhooks/{created['id']}", expect=(200, 204))


def test_expect_100_continue_with_an_oversized_body_is_refused_before_it_is_sent(api, token):
    s = socket.create_connection(("127.0.0.1", api.port), timeout=5)
    try:
        s.sendall(b"POST /api/v1/webhooks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token.encode() +
                  b"\r\nExpect: 100-continue\r\nContent-Length: 200000\r\n\r\n")
        status, headers, reply = read_response(s)
        assert status == 413 and json.loads(reply)["message"], reply
        assert headers.get(b"connection") == b"close"
    finally:
        s.close()


def test_head_arriving_a_byte_at_a_time_is_served(api, token):
    request = (b"GET /api/v1/webhooks?per_page=5 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token.encode() +
               b"\r\n\r\n")
    s = socket.create_connection(("127.0.0.1", api.port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        for i in range(len(request)):
            s.sendall(request[i:i + 1])
            if i % 16 == 0:
                time.sleep(0.002)
        status, _, reply = read_response(s)
        assert status == 200 and json.loads(reply)["paging"]["per_page"] == 5, reply
    finally:
        s.close()


def test_http_1_0_is_answered_and_closed(api):
    raw = exchange(api, b"GET /healthz HTTP/1.0\r\n\r\n", timeout=5, until_closed=True)
    assert raw.startswith(b"HTTP/1.1 200 "), raw[:200]
    assert b"\r\nConnection: close\r\n" in raw.partition(b"\r\n\r\n")[0] + b"\r\n"


def test_keep_alive_connection_serves_many_requests(api, token):
    s = socket.create_connection(("127.0.0.1", api.port), timeout=5)
    try:
        for i in range(50):
            s.sendall(b"GET /api/v1/webhooks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token.encode() +
                      b"\r\n\r\n")
            status, headers, reply = read_response(s)
            assert status == 200 and b"connection" not in headers, (i, headers)
            assert headers.get(b"content-type") == b"application/json"
            assert headers.get(b"date", b"").endswith(b" GMT")
    finally:
        s.close()


def _closed_within(s, seconds):
    """Reads s until the server closes it (True) or `seconds` pass without that (False); data is discarded."""
    s.settimeout(seconds)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            if not s.recv(65536):
                return True
    except socket.timeout:
        return False
    except ConnectionResetError:
        return True
    return False


def test_request_and_its_end_of_input_together_are_answered_then_closed(api):
    """The request and the client's FIN in one go: the server reads the request without asking the socket again
    once a read comes back short (edge-triggered epoll brings the next bytes' event), so the EOF already waiting
    behind the request must still be seen (EPOLLRDHUP) and the connection closed after the reply — not held
    until the 30 s idle timeout."""
    s = socket.create_connection(("127.0.0.1", api.port), timeout=5)
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        s.shutdown(socket.SHUT_WR)
        status, _, _ = read_response(s)
        assert status == 200
        assert _closed_within(s, 5), "the server kept a connection whose client had finished sending"
    finally:
        s.close()


def test_client_ending_a_keep_alive_connection_after_a_reply_is_closed_promptly(api):
    s = socket.create_connection(("127.0.0.1", api.port), timeout=5)
    try:
        for _ in range(2):
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(s)[0] == 200
        time.sleep(0.2)  # the server has found the socket empty since: only the FIN's own event can wake it
        s.shutdown(socket.SHUT_WR)
        assert _closed_within(s, 5), "the server missed the end of input of an idle keep-alive connection"
    finally:
        s.close()


@pytest.mark.parametrize("head,status", [
    (b"POST /api/v1/webhooks HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
     400),  # the request-smuggling pair
    (b"POST /api/v1/webhooks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
    (b"POST /api/v1/webhooks HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  folded\r\n\r\n", 400),
    (b"GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n", 400),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\n\r\n", 417),
    (b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n", 400),
    (b"GET http://x/healthz HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET /heal%zzthz HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET /healthz%00 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET /healthz HTTP/1.1\r\nHost: x\rX-Y: 1\r\n\r\n", 400),
])
def test_refused_heads_get_a_json_error_and_a_close(api, head, status):
    raw = exchange(api, head + b"abcdefgh", timeout=5, until_closed=True)
    assert status_of(raw) == status, raw[:300]
    head_part, _, body = raw.partition(b"\r\n\r\n")
    assert b"\r\nConnection: close\r\n" in head_part + b"\r\n"
    assert json.loads(body)["message"]


def _trickle(port, prefix, drip, interval, timeout):
    """Sends prefix, then drip one byte every interval seconds, until the server answers and closes or timeout.
    Returns (everything received, seconds from the first byte to the server's close)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    start = time.monotonic()
    got = b""
    try:
        s.sendall(prefix)
        s.setblocking(False)
        i = 0
        while time.monotonic() - start < timeout:
            try:
                b = s.recv(65536)
                if not b:
                    return got, time.monotonic() - start
                got += b
            except BlockingIOError:
                pass
            try:
                s.send(drip[i % len(drip):i % len(drip) + 1])
                i += 1
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                pass
            time.sleep(interval)
        return got, None
    finally:
        s.close()


def test_request_trickled_past_the_request_timeout_gets_408(redis_server):
    """A client sending one byte every 0.2 s is never idle, so the 30 s idle timeout alone would let it hold a
    connection forever (and enough such clients every connection the server allows). HTTP_REQUEST_TIMEOUT
    (here 2 s from the request's first byte) answers it 408 with a JSON message and closes — a head that never
    ends and a body that never ends alike (a stream of blank lines is closed without one) — while requests at
    normal speed go on being served."""
    a = ProducerApi(redis_server.url, f"127.0.0.1:{closed_port()}", HTTP_REQUEST_TIMEOUT="2s")
    try:
        for prefix, drip in (
                (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: ", b"abcdefgh"),  # a head that never ends
                (b"POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
                 b"Content-Type: application/json\r\n\r\n[", b" ")):  # a body that never ends
            got, took = _trickle(a.port, prefix, drip, 0.2, timeout=15)
            head, _, body = got.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 408 "), got
            assert b"\r\nConnection: close" in head, got
            assert json.loads(body) == {"message": "request not received in time"}
            assert took is not None and 2.0 <= took <= 6.0, took  # swept once a second
            assert a.healthy()
        # blank lines between requests are allowed, but a stream of nothing else is closed (no unsolicited 408)
        got, took = _trickle(a.port, b"\r\n", b"\r\n", 0.2, timeout=15)
        assert got == b"" and took is not None and 2.0 <= took <= 6.0, (got, took)
        # the same when the timeout falls between a blank line's CR and its LF (the trickle above hits that about
        # every other run; here it always does)
        s = socket.create_connection(("127.0.0.1", a.port), timeout=15)
        try:
            start = time.monotonic()
            s.sendall(b"\r\n\r\n\r")
            got = s.recv(65536)
            took = time.monotonic() - start
        finally:
            s.close()
        assert got == b"" and 2.0 <= took <= 6.0, (got, took)
        # a keep-alive connection that waits between whole requests is idle, not trickling: served each time
        s = socket.create_connection(("127.0.0.1", a.port), timeout=10)
        try:
            for _ in range(2):
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                answer = s.recv(65536)
                assert answer.startswith(b"HTTP/1.1 200 "), answer
                time.sleep(2.5)
        finally:
            s.close()
        assert a.running, a.stderr_text()[-3000:]
        a.stop()
    finally:
        a.cleanup()
