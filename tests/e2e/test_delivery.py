"""End-to-end: fan-out, exact body and headers, signatures, isolation of slow receivers, SSRF guard."""

import base64
import hashlib
import hmac
import json
import time
from datetime import datetime

import pytest

from conftest import PARTITIONS, http, kafka_partition, wait_until

VERSION = "0.1.0"


def verify_signature(secret: str, msg_id: str, timestamp: str, body: bytes, header: str) -> bool:
    """Standard Webhooks v1, independently of hookd's C code."""
    key = base64.b64decode(secret[len("whsec_"):])
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    expected = "v1," + base64.b64encode(mac).decode()
    return any(hmac.compare_digest(expected, part) for part in header.split(" "))


def project_event(org: int, n: int, type_: str = "project.created") -> dict:
    if type_.startswith("project"):
        data = {"id": n, "name": f"Project {n}", "archived": False}
    else:
        data = {"id": n}
    return {"type": type_, "organization_id": org, "data": data}


def test_fan_out_headers_body_signature(stack):
    rcv = stack.receiver()
    api = stack.api
    org, other_org = stack.new_org(), stack.new_org()
    hooks = [api.create_webhook(org, rcv.url(f"/org/{i}"), "project.created") for i in range(3)]
    api.create_webhook(other_org, rcv.url("/other-org"), "project.created")
    api.create_webhook(org, rcv.url("/other-type"), "project.updated")
    deleted = api.create_webhook(org, rcv.url("/deleted"), "project.created")
    api.delete_webhook(org, deleted["id"])

    d = stack.dispatcher().wait_ready()
    events = [project_event(org, i) for i in range(5)]
    ids = api.post_events(events)

    expected = {(f"/org/{i}", eid) for i in range(3) for eid in ids}
    assert rcv.wait_for(lambda reqs: {(r.path, r.headers.get("webhook-id")) for r in reqs} >= expected, 30), \
        d.proc.tail()
    time.sleep(1.0)  # anything extra would show up by now
    reqs = rcv.requests()
    assert sorted((r.path, r.headers["webhook-id"]) for r in reqs) == sorted(expected), d.story()  # exactly once each

    secrets = {f"/org/{i}": h["secret"] for i, h in enumerate(hooks)}
    by_id = dict(zip(ids, events))
    for r in reqs:
        ev = by_id[r.headers["webhook-id"]]
        assert r.method == "POST"
        assert r.body == json.dumps({"data": ev["data"], "type": ev["type"]}, separators=(",", ":")).encode()
        assert r.headers["content-type"] == "application/json"
        assert r.headers["user-agent"] == f"hookd/{VERSION}"
        ts = r.headers["webhook-timestamp"]
        assert ts.isdigit() and abs(int(ts) - time.time()) < 60
        assert r.headers["webhook-signature"].startswith("v1,")
        assert verify_signature(secrets[r.path], r.headers["webhook-id"], ts, r.body, r.headers["webhook-signature"])
        assert not verify_signature(secrets[r.path], r.headers["webhook-id"], str(int(ts) + 1), r.body,
                                    r.headers["webhook-signature"])

    attempts = d.attempts()
    assert len([a for a in attempts if a["outcome"] == "success"]) == 15
    for a in attempts:
        assert {"event_id", "webhook_id", "status", "latency_ms"} <= a.keys()
    m = d.metrics()
    assert m['hookd_dispatcher_deliveries_total{outcome="success",status_class="2xx"}'] == 15
    assert m["hookd_dispatcher_events_consumed_total"] == 5


def test_receivers_get_data_as_the_client_wrote_it_less_whitespace(stack):
    """data goes to Kafka and on to receivers as the client's own text without the whitespace between tokens:
    escapes, number spellings and key order kept (producer-api no longer re-serialises it), signature over those
    bytes; a batch whose one event holds a duplicate key deep inside is refused whole."""
    rcv = stack.receiver()
    api = stack.api
    org = stack.new_org()
    hook = api.create_webhook(org, rcv.url("/as-written"), "project.updated")
    d = stack.dispatcher().wait_ready()

    data = ('{ "z" : [ 1 , 2.50 , -0 , 1E+2 ] ,\n\t"id" : 41 , "s" : "caf\\u00e9 \\/ \\" d\u00e9j\u00e0 vu" ,'
            ' "n" : { "a b" : null } }')
    compact = ('{"z":[1,2.50,-0,1E+2],"id":41,"s":"caf\\u00e9 \\/ \\" d\u00e9j\u00e0 vu","n":{"a b":null}}')
    body = f'[ {{ "type" : "project.updated", "organization_id" : {org}, "data" : {data} }} ]'.encode()
    status, answer = http("POST", api.url + "/api/v1/events", body, token=api.service_token)
    assert status == 202, answer
    event_id = answer["data"][0]["id"]

    bad = f'[{{"type":"project.updated","organization_id":{org},"data":{{"id":1}}}},' \
          f'{{"type":"project.updated","organization_id":{org},"data":{{"id":2,"x":{{"k":1,"k":2}}}}}}]'.encode()
    status, answer = http("POST", api.url + "/api/v1/events", bad, token=api.service_token)
    assert status == 403 and answer["errors"] == [{"field": "body", "message": "must be valid JSON (UTF-8)"}], answer

    assert rcv.wait_for(lambda reqs: len(reqs) >= 1, 30), d.proc.tail()
    time.sleep(1.0)  # the refused batch must deliver nothing
    reqs = rcv.requests()
    assert len(reqs) == 1
    r = reqs[0]
    assert r.headers["webhook-id"] == event_id
    assert r.body == b'{"data":' + compact.encode() + b',"type":"project.updated"}'
    assert json.loads(r.body)["data"] == json.loads(data)
    assert verify_signature(hook["secret"], event_id, r.headers["webhook-timestamp"], r.body,
                            r.headers["webhook-signature"])


def envelope(event_id: str, org: int, n: int, type_: str = "project.created") -> str:
    return json.dumps({"id": event_id, "type": type_, "organization_id": org,
                       "occurred_at": "2026-11-29T01:02:03.456Z", "data": {"id": n, "name": f"P{n}"}})


def test_hanging_receiver_does_not_delay_others(stack):
    fast, slow = stack.receiver(), stack.receiver()
    slow.configure("/hang", delay=30)
    org = stack.new_org()
    api = stack.api
    api.create_webhook(org, slow.url("/hang"), "project.created")
    api.create_webhook(org, fast.url("/fast"), "project.created")
    d = stack.dispatcher(DELIVERY_TIMEOUT="4s", SHUTDOWN_GRACE="1s").wait_ready()
    start = time.monotonic()
    ids = api.post_events([project_event(org, i) for i in range(20)])
    assert fast.wait_for(lambda reqs: {r.headers["webhook-id"] for r in reqs} >= set(ids), 10)
    assert time.monotonic() - start < 3.5, "fast receiver waited for the hanging one"
    # the hanging attempts end as timeouts, logged as failed attempts
    wait_until(lambda: len([a for a in d.attempts() if a["outcome"] == "timeout"]) == 20, 15,
               what="20 timeouts")
    t = [a for a in d.attempts() if a["outcome"] == "timeout"][0]
    assert t["error"] == "timeout" and t["status"] == 0 and t["latency_ms"] >= 3900


def test_a_receiver_streaming_an_endless_body_gets_one_short_successful_attempt(stack):
    """The receiver answers 200, then streams its body without end. The status is its answer, so the attempt is a
    success, but it used to read on until DELIVERY_TIMEOUT (4 s here). Now it stops at 64 KiB
    (DELIVERY_RESPONSE_BODY_MAX, common/delivery_http.h)."""
    rcv = stack.receiver()
    rcv.stream_endlessly("/endless")
    org = stack.new_org()
    stack.api.create_webhook(org, rcv.url("/endless"), "project.created")
    d = stack.dispatcher(DELIVERY_TIMEOUT="4s", LOG_ATTEMPTS="all").wait_ready()
    (eid,) = stack.api.post_events([project_event(org, 1)])
    wait_until(lambda: [a for a in d.attempts() if a["event_id"] == eid], 20, what="the attempt")
    (a,) = [a for a in d.attempts() if a["event_id"] == eid]
    assert (a["outcome"], a["status"]) == ("success", 200), a
    assert a["latency_ms"] < 2000, a
    success = 'hookd_dispatcher_deliveries_total{outcome="success",status_class="2xx"}'
    assert d.metrics().get(success) == 1
    assert len(rcv.requests("/endless")) == 1


def test_receiver_closing_idle_connections_costs_no_delivery_time(stack):
    """A receiver that hangs up after every response, unannounced (as load balancers and servers with short
    keep-alive timeouts do): the dispatcher keeps idle connections in its epoll set between deliveries, so it
    must notice the hang-up there and open a new connection for the next delivery, promptly, whether the
    connection's socket number comes back for the new one or not; the webhook on "localhost" also makes
    libcurl's resolver watch a socket of its own."""
    rcv = stack.receiver()
    rcv.close_after_response = True
    org = stack.new_org()
    api = stack.api
    api.create_webhook(org, rcv.url("/by-ip"), "project.created")
    api.create_webhook(org, f"https://localhost:{rcv.port}/by-name", "project.created")
    d = stack.dispatcher(DELIVERY_TIMEOUT="5s").wait_ready()
    for n in range(8):  # one at a time: each hang-up reaches an idle, pooled connection
        start = time.monotonic()
        [eid] = api.post_events([project_event(org, n)])
        assert rcv.wait_for(lambda reqs: {(r.path, r.headers.get("webhook-id")) for r in reqs}
                            >= {("/by-ip", eid), ("/by-name", eid)}, 4), d.proc.tail()
        assert time.monotonic() - start < 2.5, f"event {n} took {time.monotonic() - start:.1f}s"
        time.sleep(0.3)
    ids = api.post_events([project_event(org, 100 + n) for n in range(40)])  # and a burst
    want = {(p, eid) for p in ("/by-ip", "/by-name") for eid in ids}
    assert rcv.wait_for(lambda reqs: {(r.path, r.headers.get("webhook-id")) for r in reqs} >= want, 4), \
        d.proc.tail()
    time.sleep(0.5)
    seen = [(r.path, r.headers["webhook-id"]) for r in rcv.requests()]
    assert len(seen) == len(set(seen)) == 2 * (8 + 40)  # each exactly once
    assert {a["outcome"] for a in d.attempts()} == {"success"}


def test_new_connections_resume_the_tls_session(stack):
    """A delivery thread keeps the TLS sessions its connections got (tls_sessions.c): a connection it opens
    later to the same receiver resumes one instead of a full handshake, whichever pooled easy handle opens it.
    One delivery first (its connection does the full handshake and brings the session), then a burst that
    needs new connections at once (the receiver answers after 0.3 s, so the burst's deliveries overlap): they
    must resume it, as the receiver sees it (the build before tls_sessions.c resumed none of them: each was
    opened by a pooled handle that had not connected there). Every one of them: OpenSSL retires a TLS 1.3 session
    once a connection has used it, and a burst's connections that started after the first one's handshake came
    out full (1 to 7 of 7 resumed) until delivery_http_prepare_ssl_ctx kept the session resumable. One delivery
    thread, so the burst meets the thread that holds the session."""
    rcv = stack.receiver()
    rcv.configure("/tls", delay=0.3)
    org = stack.new_org()
    stack.api.create_webhook(org, rcv.url("/tls"), "project.created")
    d = stack.dispatcher(DELIVERY_THREADS="1").wait_ready()
    stack.api.post_events([project_event(org, 0)])
    assert rcv.wait_for(lambda reqs: len(reqs) >= 1, 30), d.proc.tail()
    time.sleep(0.5)  # the answer (and the session ticket sent with it) has been read
    stack.api.post_events([project_event(org, n) for n in range(1, 9)])
    assert rcv.wait_for(lambda reqs: len(reqs) >= 9, 30), d.proc.tail()
    connections = rcv.connections()
    assert connections[0].tls_resumed is False  # nothing to resume yet
    assert len(connections) >= 6, f"the burst used {len(connections) - 1} new connections: it did not overlap"
    later = connections[1:]
    resumed = [c for c in later if c.tls_resumed is True]
    assert len(resumed) == len(later), \
        f"{len(later) - len(resumed)} of {len(later)} later connections did a full TLS handshake: " + \
        str([(c.client_port, c.tls_resumed, round(c.at - connections[0].at, 3)) for c in connections])
    assert {a["outcome"] for a in d.attempts()} == {"success"}
    # the dispatcher counts the handshakes it made as the receiver saw them
    wait_until(lambda: len(d.attempts()) >= 9, 10, what="nine attempts logged")
    m = d.metrics()
    assert m.get('hookd_dispatcher_tls_handshakes_total{resumed="true"}') == len(resumed), m
    assert m.get('hookd_dispatcher_tls_handshakes_total{resumed="false"}') == len(connections) - len(resumed), m


def first_burst(stack, path, delay, count, **receiver_options):
    """A dispatcher with one delivery thread meets a new receiver (answering after delay seconds) with a burst of
    count events to one webhook. Returns the dispatcher and the receiver's connections once all count deliveries
    arrived."""
    rcv = stack.receiver(**receiver_options)
    rcv.configure(path, delay=delay)
    org = stack.new_org()
    stack.api.create_webhook(org, rcv.url(path), "project.created")
    d = stack.dispatcher(DELIVERY_THREADS="1").wait_ready()
    stack.api.post_events([project_event(org, n) for n in range(count)])
    assert rcv.wait_for(lambda reqs: len(reqs) >= count, 30), d.proc.tail()
    return d, rcv.connections()


def test_a_burst_to_a_new_receiver_resumes_the_first_connections_session(stack):
    """A delivery thread meeting a receiver for the first time with a burst sends one delivery first and holds the
    rest until that connection has brought a TLS session (dispatcher/first_contact.c): one full handshake, the
    other connections resume it. Before, every connection of the burst was a full handshake (no session existed
    yet). The receiver answers after 0.3 s, so the burst needs a connection per delivery."""
    d, connections = first_burst(stack, "/first", 0.3, 16)
    assert len(connections) >= 6, f"the burst used {len(connections)} connections: it did not overlap"
    full = [c for c in connections if c.tls_resumed is not True]
    assert len(full) == 1, [(c.client_port, c.tls_resumed, round(c.at - connections[0].at, 3)) for c in connections]
    assert full[0] is connections[0]  # the scout's
    # the held deliveries waited for the scout's session, not for its answer (0.3 s) nor the hold's end (0.25 s)
    assert connections[1].at - connections[0].at < 0.2, [round(c.at - connections[0].at, 3) for c in connections]
    wait_until(lambda: len(d.attempts()) >= 16, 10, what="sixteen attempts logged")
    assert {a["outcome"] for a in d.attempts()} == {"success"}
    m = d.metrics()
    assert m.get('hookd_dispatcher_tls_handshakes_total{resumed="false"}') == 1, m
    assert m.get('hookd_dispatcher_tls_handshakes_total{resumed="true"}') == len(connections) - 1, m


def test_a_receiver_without_session_resumption_holds_a_first_burst_250_ms_at_most(stack):
    """The first-contact hold ends after FIRST_CONTACT_HOLD_MS (250 ms) when no session ever comes (the receiver
    issues no tickets), not when the first delivery's answer comes (0.5 s here): a receiver that cannot resume
    costs its first burst that wait once, and nothing is stuck."""
    d, connections = first_burst(stack, "/noresume", 0.5, 6, tickets=False)
    assert len(connections) == 6 and not any(c.tls_resumed for c in connections)
    wait_until(lambda: len(d.attempts()) >= 6, 10, what="six attempts logged")
    assert {a["outcome"] for a in d.attempts()} == {"success"}
    # When each attempt started, as the dispatcher logged it (its end less its latency): the receiver's arrival
    # times would also count the scout's own handshake, which on a loaded machine took ~280 ms, as long as the hold
    # (CI, 2026-12-07: the six requests arrived within 29 ms although the five started 277 ms after the scout).
    starts = sorted(datetime.strptime(a["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").timestamp() - a["latency_ms"] / 1000
                    for a in d.attempts())
    waited = [round(t - starts[0], 3) for t in starts[1:]]
    assert all(0.15 < w < 0.45 for w in waited), waited


def test_ssrf_guard_refuses_private_address_at_connect(stack):
    rcv = stack.receiver()
    org = stack.new_org()
    stack.api.create_webhook(org, rcv.url("/private"), "user.created")
    d = stack.dispatcher(ALLOW_PRIVATE_TARGETS="0").wait_ready()
    (eid,) = stack.api.post_events([project_event(org, 1, "user.created")])
    wait_until(lambda: d.attempts(), 20, what="an attempt")
    (a,) = d.attempts()
    assert a["event_id"] == eid
    assert a["outcome"] == "forbidden" and a["error"] == "destination address is forbidden"
    assert rcv.requests() == []
    m = d.metrics()
    assert m['hookd_dispatcher_deliveries_total{outcome="forbidden",status_class="none"}'] == 1


def test_non_2xx_and_redirects_are_failed_attempts(stack):
    rcv = stack.receiver()
    rcv.configure("/500", status=500)
    rcv.configure("/302", status=302)
    rcv.configure("/404", status=404)
    rcv.configure("/204", status=204)
    org = stack.new_org()
    for p in ("/500", "/302", "/404", "/204"):
        stack.api.create_webhook(org, rcv.url(p), "time.entry.updated")
    d = stack.dispatcher().wait_ready()
    stack.api.post_events([project_event(org, 7, "time.entry.updated")])
    wait_until(lambda: len(d.attempts()) == 4, 20, what="4 attempts")
    by_status = {a["status"]: a for a in d.attempts()}
    assert by_status[204]["outcome"] == "success"
    for s in (500, 302, 404):
        assert by_status[s]["outcome"] == "http_error" and by_status[s]["error"] == f"HTTP status {s}"
    assert len(rcv.requests()) == 4  # the 302 was not followed
    m = d.metrics()
    assert m['hookd_dispatcher_deliveries_total{outcome="http_error",status_class="3xx"}'] == 1
    assert m['hookd_dispatcher_deliveries_total{outcome="http_error",status_class="5xx"}'] == 1
    assert m["hookd_dispatcher_attempt_duration_seconds_count"] == 4


def test_successes_are_logged_only_with_log_attempts_all(stack):
    """By default (LOG_ATTEMPTS=failures) a failed attempt gets its "delivery attempt" line and a success does not;
    both are in the metrics and the delivery log."""
    rcv = stack.receiver()
    rcv.configure("/500", status=500)
    org = stack.new_org()
    ok = stack.api.create_webhook(org, rcv.url("/ok"), "user.updated")
    stack.api.create_webhook(org, rcv.url("/500"), "user.updated")
    d = stack.dispatcher(LOG_ATTEMPTS=None).wait_ready()
    (eid,) = stack.api.post_events([project_event(org, 8, "user.updated")])
    success = 'hookd_dispatcher_deliveries_total{outcome="success",status_class="2xx"}'
    wait_until(lambda: d.metrics().get(success) == 1 and d.attempts(), 20, what="both first attempts")
    time.sleep(0.5)  # a line is written at the end of the loop pass that made it
    (a,) = [a for a in d.attempts() if a["attempt"] == 1]
    assert (a["event_id"], a["outcome"], a["status"]) == (eid, "http_error", 500)
    assert [r.path for r in rcv.requests()].count("/ok") == 1
    status, body = http("GET", stack.api.url + f"/api/v1/webhooks/{ok['id']}/deliveries",
                        token=stack.api.org_token(org))
    assert status == 200 and [(x["event_id"], x["status"]) for x in body["data"]] == [(eid, 200)], body
    started = [line for line in d.proc.log_lines() if line.get("msg") == "dispatcher started"]
    assert started and started[0]["log_attempts"] == "failures"


def test_malformed_message_is_skipped(stack, kafka_broker):
    rcv = stack.receiver()
    org = stack.new_org()
    stack.api.create_webhook(org, rcv.url("/a"), "project.created")
    d = stack.dispatcher().wait_ready()
    topic = stack.api.prefix + "project.created"
    kafka_broker.produce(topic, "not json", key=str(org), partition=0)
    kafka_broker.produce(topic, json.dumps({"id": "x", "type": "project.created"}), key=str(org), partition=0)
    kafka_broker.produce(topic, envelope("evt-after-garbage", org, 1), key=str(org), partition=0)
    assert rcv.wait_for(lambda reqs: len(reqs) == 1, 20)
    assert rcv.requests()[0].headers["webhook-id"] == "evt-after-garbage"
    wait_until(lambda: d.metrics()["hookd_dispatcher_events_malformed_total"] == 2, 10, what="2 malformed")
    # the malformed offsets completed too: everything on partition 0 is committed after a stop
    assert d.proc.stop() == 0
    offsets = kafka_broker.group_offsets(d.group_of("project.created"))
    assert offsets[(topic, 0)] == 3


def test_subscription_changes_apply_within_a_second(stack):
    rcv = stack.receiver()
    org = stack.new_org()
    api = stack.api
    d = stack.dispatcher().wait_ready()
    api.post_events([project_event(org, 0, "assignment.created")])  # caches "no subscribers"
    wait_until(lambda: d.metrics()["hookd_dispatcher_events_consumed_total"] == 1, 10, what="consumed")
    hook = api.create_webhook(org, rcv.url("/new"), "assignment.created")
    time.sleep(1.0)
    (e1,) = api.post_events([project_event(org, 1, "assignment.created")])
    assert rcv.wait_for(lambda reqs: [r.headers["webhook-id"] for r in reqs] == [e1], 10)
    api.delete_webhook(org, hook["id"])
    time.sleep(1.0)
    api.post_events([project_event(org, 2, "assignment.created")])
    wait_until(lambda: d.metrics()["hookd_dispatcher_events_consumed_total"] == 3, 10, what="consumed")
    time.sleep(0.5)
    assert len(rcv.requests()) == 1
    # steady state: no Redis round trip per event
    hook = api.create_webhook(org, rcv.url("/steady"), "assignment.created")
    time.sleep(1.0)
    misses_before = d.metrics()["hookd_dispatcher_subscriber_cache_misses_total"]
    ids = api.post_events([project_event(org, 100 + i, "assignment.created") for i in range(50)])
    assert rcv.wait_for(lambda reqs: {r.headers["webhook-id"] for r in reqs if r.path == "/steady"} >= set(ids), 20)
    assert d.metrics()["hookd_dispatcher_subscriber_cache_misses_total"] - misses_before <= 2


def test_a_full_subscriber_cache_keeps_the_organizations_in_use(stack):
    """SUBSCRIBER_CACHE_MAX_ENTRIES bounds the subscriber cache; when it is full, the (organization, event type) looked
    up least recently goes, so organizations whose events keep coming stay cached while others come and go (events
    of organizations without webhooks are cached too, as empty lists). It used to drop the whole cache whenever it
    filled: each time, every busy organization's next event was a Redis lookup again. Judged only in a pass without
    a whole-cache drop (a stall of the Redis thread under valgrind drops it)."""
    rcv = stack.receiver()
    api = stack.api
    etype = "user.updated"
    busy = [stack.new_org() for _ in range(2)]
    for o in busy:
        api.create_webhook(o, rcv.url(f"/busy/{o}"), etype)
    d = stack.dispatcher(SUBSCRIBER_CACHE_MAX_ENTRIES="4").wait_ready()

    def metric(name):
        return d.metrics()[f"hookd_dispatcher_{name}"]

    def deliver_busy(n):
        ids = api.post_events([project_event(o, n, etype) for o in busy])
        want = {(f"/busy/{o}", i) for o, i in zip(busy, ids)}
        assert rcv.wait_for(lambda reqs: {(r.path, r.headers["webhook-id"]) for r in reqs} >= want, 20), want

    def pass_by(org, n):  # an organization without webhooks: its event is looked up, and goes to no one
        before = metric("events_without_subscribers_total")
        api.post_events([project_event(org, n, etype)])
        wait_until(lambda: metric("events_without_subscribers_total") == before + 1, 10, what="the event looked up")

    deliver_busy(0)
    for attempt in range(3):
        deliver_busy(1)
        pass_by(stack.new_org(), 1)
        pass_by(stack.new_org(), 1)  # the cache is full now: the two busy organizations and these two
        before = {k: metric(f"subscriber_cache_{k}_total") for k in ("misses", "evictions", "flushes")}
        for n in range(2, 10):
            deliver_busy(n)
            pass_by(stack.new_org(), n)
            pass_by(stack.new_org(), n)
        after = {k: metric(f"subscriber_cache_{k}_total") for k in ("misses", "evictions", "flushes")}
        if after["flushes"] == before["flushes"]:
            # 16 new organizations, each a miss that evicts one of the passing ones; the busy two never read again
            assert after["misses"] - before["misses"] == 16, (before, after)
            assert after["evictions"] - before["evictions"] == 16, (before, after)
            assert metric("subscriber_cache_misses_total") == after["misses"]
            break
    else:
        pytest.fail("the whole cache was dropped in every pass")


def test_a_webhook_change_drops_only_its_own_cached_subscribers(stack):
    """A dispatcher caches each (organization, event type)'s subscribers. A change to one organization's webhooks
    drops that entry alone (the change log hookd:subs:changes): before, every change dropped the whole cache and each
    organization's next event cost an HVALS on the dispatcher's loop (five misses here where one is needed; with
    thousands of organizations, thousands of blocking round trips per change). A version moved by a writer that
    keeps no change log (an older producer-api during a rolling upgrade) still drops everything.

    A Redis call of the dispatcher's Redis thread that takes over 250 ms counts as a stall and drops the whole cache
    too, when it ends and again at the next changes read (under valgrind it happens now and then): a round that met
    a stall or a whole-cache drop is repeated, or its counts not judged."""
    rcv = stack.receiver()
    api = stack.api
    etype = "time.entry.updated"
    orgs = [stack.new_org() for _ in range(5)]
    for o in orgs:
        api.create_webhook(o, rcv.url(f"/first/{o}"), etype)
    d = stack.dispatcher().wait_ready()

    def counters():
        m = d.metrics()
        return (m["hookd_dispatcher_subscriber_cache_misses_total"], m["hookd_dispatcher_subscriber_cache_flushes_total"],
                m["hookd_dispatcher_subscription_changes_total"])

    def stalls():
        return sum(1 for line in d.proc.log_lines() if line.get("msg") == "redis unavailable; subscriber lookups paused")

    def post_round(n, extra_path=None):
        """Posts an event per organization; waits until each reached its /first webhook (and orgs[0]'s extra_path)."""
        ids = api.post_events([project_event(o, n, etype) for o in orgs])
        want = {(f"/first/{o}", i) for o, i in zip(orgs, ids)} | ({(extra_path, ids[0])} if extra_path else set())
        assert rcv.wait_for(lambda reqs: {(r.path, r.headers["webhook-id"]) for r in reqs} >= want, 20), want
        return ids

    def warm(n):
        """A round that leaves every organization cached: the counters and stall count to judge the next round by,
        or None when the whole cache was dropped meanwhile (a stall that ended)."""
        flushes, stalls_before = counters()[1], stalls()
        post_round(n)
        before = counters()
        return (before, stalls()) if before[1] == flushes and stalls() == stalls_before else None

    post_round(1)
    added = []
    for attempt in range(3):  # a new webhook of orgs[0]: only its entry is read again
        start = warm(20 + attempt)
        if start is None:
            continue
        before, stalls_before = start
        added.append(api.create_webhook(orgs[0], rcv.url(f"/second/{attempt}"), etype))
        wait_until(lambda: counters()[2] >= before[2] + 1, 5, what="the change applied")
        post_round(30 + attempt, f"/second/{attempt}")
        after = counters()
        if stalls() == stalls_before and after[1] == before[1]:
            assert after == (before[0] + 1, before[1], before[2] + 1), (before, after)
            break
    else:
        pytest.fail("the whole cache was dropped in every round")

    start = warm(40)
    for hook in added:
        api.delete_webhook(orgs[0], hook["id"])
    wait_until(lambda: counters()[2] >= start[0][2] + len(added) if start else True, 5, what="the deletes applied")
    time.sleep(0.5)
    ids = post_round(41)
    assert not [r for r in rcv.requests() if r.path.startswith("/second/") and r.headers["webhook-id"] == ids[0]]
    if start is not None and stalls() == start[1] and counters()[1] == start[0][1]:
        before = start[0]
        assert counters() == (before[0] + 1, before[1], before[2] + len(added))

    start = warm(50)
    stack.api.redis.cli("INCR", "hookd:subs:version")  # a change the log does not list
    if start is not None:
        wait_until(lambda: counters()[1] >= start[0][1] + 1, 5, what="the whole cache dropped")
    time.sleep(0.5)
    post_round(51)
    if start is not None and stalls() == start[1] and counters()[1] == start[0][1] + 1:
        before = start[0]
        assert counters() == (before[0] + 5, before[1] + 1, before[2])


def test_aged_subscriber_lists_are_read_again_on_the_redis_thread(stack):
    """A cached subscriber list older than SUBSCRIBER_CACHE_MAX_AGE is read again, a safety net for a change the
    dispatcher did not see. The read runs on the dispatcher's Redis thread while the list in hand is still used:
    no lookup on the event loop (the misses counter stays put) and no event waits for it. Before, each active
    (organization, event type) cost an HVALS on the loop once a minute. The missed change here: a webhook written
    into the subscriber hash without going through the API (no version bump, no change log entry)."""
    rcv = stack.receiver()
    api = stack.api
    org = stack.new_org()
    etype = "assignment.updated"
    api.create_webhook(org, rcv.url("/known"), etype)
    d = stack.dispatcher(SUBSCRIBER_CACHE_MAX_AGE="1s").wait_ready()
    (first,) = api.post_events([project_event(org, 1, etype)])
    assert rcv.wait_for(lambda reqs: [r.headers["webhook-id"] for r in reqs] == [first], 20)
    misses = d.metrics()["hookd_dispatcher_subscriber_cache_misses_total"]
    secret = "whsec_" + base64.b64encode(bytes(range(32))).decode()
    unseen = {"id": 990000000 + org, "url": rcv.url("/unseen"), "status": "active", "event_type": etype,
              "organization_id": org, "secret": secret}
    stack.api.redis.cli("HSET", f"hookd:subs:{org}:{etype}", str(unseen["id"]), json.dumps(unseen))
    try:
        sent = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not rcv.requests("/unseen"):
            sent += api.post_events([project_event(org, 2 + len(sent), etype)])
            time.sleep(0.25)
        assert rcv.requests("/unseen"), "the aged list was never read again"
        assert rcv.wait_for(lambda reqs: {r.headers["webhook-id"] for r in reqs if r.path == "/known"} >= set(sent),
                            20)
        m = d.metrics()
        assert m["hookd_dispatcher_subscriber_cache_misses_total"] == misses  # none on the loop
        assert m["hookd_dispatcher_subscriber_cache_refreshes_total"] >= 1
        assert m["hookd_dispatcher_events_waiting_for_redis"] == 0
    finally:
        stack.api.redis.cli("HDEL", f"hookd:subs:{org}:{etype}", str(unseen["id"]))


def test_backpressure_pauses_and_resumes(stack):
    rcv = stack.receiver()
    rcv.configure("/slow", delay=0.3)
    org = stack.new_org()
    stack.api.create_webhook(org, rcv.url("/slow"), "user.updated")
    d = stack.dispatcher(MAX_IN_FLIGHT="4").wait_ready()
    ids = stack.api.post_events([project_event(org, i, "user.updated") for i in range(40)])
    seen_paused = False
    max_in_flight = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        m = d.metrics()
        seen_paused |= m["hookd_dispatcher_consumption_paused"] == 1
        max_in_flight = max(max_in_flight, m["hookd_dispatcher_deliveries_in_flight"])
        if {r.headers["webhook-id"] for r in rcv.requests()} >= set(ids):
            break
        time.sleep(0.05)
    assert {r.headers["webhook-id"] for r in rcv.requests()} >= set(ids)
    assert seen_paused
    wait_until(lambda: d.metrics()["hookd_dispatcher_consumption_paused"] == 0, 10, what="resumed")


def test_a_backlog_of_one_event_type_does_not_queue_the_others_behind_it(stack):
    """Each event topic has a Kafka consumer of its own (CONSUMER_PER_TOPIC=1, the default), drained in turn. With
    2,000 events of one type prefetched into the dispatcher and worked off through 10 slots (MAX_IN_FLIGHT) by a
    receiver taking 20 ms, an event of another type posted meanwhile takes one of the next free slots; with one
    consumer for every topic (CONSUMER_PER_TOPIC=0) it waited in the same local queue behind the whole prefetched
    backlog (checked by running this test with that setting: 11.7 s, after all 2,000; 0.03-0.04 s with it)."""
    rcv = stack.receiver()
    busy_org, org = stack.new_org(), stack.new_org()
    rcv.configure("/backlog", delay=0.02)
    stack.api.create_webhook(busy_org, rcv.url("/backlog"), "project.created")
    stack.api.create_webhook(org, rcv.url("/fresh"), "user.created")
    n = 2000
    stack.api.post_events([project_event(busy_org, i) for i in range(n)])
    d = stack.dispatcher(MAX_IN_FLIGHT="10", CONSUMER_PER_TOPIC="1").wait_ready()
    assert rcv.wait_for(lambda reqs: len(reqs) >= 200, 60), d.proc.tail()
    [fresh_id] = stack.api.post_events([project_event(org, 1, "user.created")])
    posted = time.monotonic()
    assert rcv.wait_for(lambda reqs: any(r.path == "/fresh" for r in reqs), 60), d.proc.tail()
    reqs = rcv.requests()
    fresh = next(r for r in reqs if r.path == "/fresh")
    backlog_before = sum(1 for r in reqs if r.path == "/backlog" and r.at <= fresh.at)
    assert fresh.headers["webhook-id"] == fresh_id
    assert backlog_before < n - 500, "the backlog was nearly done: the test measured nothing"
    assert fresh.at - posted < 1.0, f"waited {fresh.at - posted:.2f} s behind {backlog_before} of {n}"
    assert rcv.wait_for(lambda r: sum(1 for x in r if x.path == "/backlog") >= n, 60)


def test_busy_webhook_does_not_hold_back_its_partition_neighbours(stack):
    """A healthy but slow receiver (50 ms) with a burst of 3,000 events, and another organization whose key falls
    on the same partition of the same topic. The slow webhook's deliveries queue in memory behind its
    PER_WEBHOOK_IN_FLIGHT attempts. Before 2026-12-03 that queue took all of MAX_IN_FLIGHT and every other event
    waited behind the burst (11.1-11.5 s, measured); until 2026-12-05 the busy webhook's partition was held in Kafka
    once its queue was full, which spared other partitions but not this neighbour: it waited for the burst's pace
    (16.3 s, checked with RETRY_SCHEDULE=none, which still works that way). Now the busy webhook's deliveries past
    its full queue are parked on a retry tier without using an attempt once the dispatcher has half of
    MAX_IN_FLIGHT free again (the burst's first intake takes up to all of it: until it drains to half, ~1.6 s at
    this receiver's pace, the partition is held), and the neighbour's event goes out then: 2-3 s."""
    slow, fast = stack.receiver(), stack.receiver()
    slow.configure("/busy", delay=0.05)
    busy_org = stack.new_org()
    other_org = stack.new_org()
    while kafka_partition(str(other_org), PARTITIONS) != kafka_partition(str(busy_org), PARTITIONS):
        other_org = stack.new_org()
    stack.api.create_webhook(busy_org, slow.url("/busy"), "project.created")
    stack.api.create_webhook(other_org, fast.url("/other"), "project.created")
    d = stack.dispatcher(RETRY_SCHEDULE="1s,1s,1s").wait_ready()
    ids = stack.api.post_events([project_event(busy_org, i) for i in range(3000)])
    assert slow.wait_for(lambda reqs: len(reqs) >= 100, 20), "the burst is not being delivered"
    start = time.monotonic()
    [other_id] = stack.api.post_events([project_event(other_org, 1)])
    assert fast.wait_for(lambda reqs: any(r.headers["webhook-id"] == other_id for r in reqs), 30)
    waited = time.monotonic() - start
    print(f"the neighbour waited {waited:.2f} s")
    assert waited < 6.0, f"the neighbour's event waited {waited:.1f} s behind the burst"
    assert len(slow.requests()) < 2000, "the burst was (nearly) finished first: nothing was measured"
    m = d.metrics()
    assert m["hookd_dispatcher_deliveries_parked_total"] > 0  # (and a few holds while the first intake drains)
    # the burst itself loses and repeats nothing (every event exactly once), each at its first attempt: parking is
    # not a failure
    assert slow.wait_for(lambda reqs: len(reqs) >= 3000, 90), f"{len(slow.requests())} of 3000"
    time.sleep(0.5)
    got = [r.headers["webhook-id"] for r in slow.requests()]
    assert len(got) == 3000 and set(got) == set(ids)
    attempts = [a for a in d.attempts() if a["organization_id"] == busy_org]
    assert len(attempts) == 3000 and {(a["outcome"], a["attempt"]) for a in attempts} == {("success", 1)}
    m = d.metrics()
    assert m["hookd_dispatcher_events_consumed_total"] == 3001
    assert not [k for k, v in m.items() if k.startswith("hookd_dispatcher_retries_scheduled_total") and v > 0]
    parked = [line for line in d.proc.log_lines() if line.get("msg") == "delivery parked: its webhook is backlogged"]
    assert parked and parked[0]["url"] == slow.url("/busy") and parked[0]["attempt"] == 1
