"""End-to-end: durable Kafka retries, dead letters, replay, Retry-After, 410, crash safety, isolation (per-webhook
in-flight cap, circuit breaker), the delivery log and secret rotation.

RETRY_SCHEDULE=1s,1s,1s everywhere (4 attempts) unless a test needs retries to stay pending longer.
"""

import base64
import hashlib
import hmac
import json
import os
import re
import subprocess
import time

from conftest import BIN, http, wait_until
from support.receiver import Receiver
from test_delivery import project_event, verify_signature

FAST = {"RETRY_SCHEDULE": "1s,1s,1s"}


class ScriptedReceiver(Receiver):
    """Answers from a per-path script: the n-th request to a path gets script[n] (the last entry repeats), with
    extra response headers; unscripted paths answer as configured."""

    def __init__(self, ca):
        super().__init__(ca)
        self._scripts = {}
        self._counts = {}

    def script(self, path, answers):
        """answers: [(status, headers_dict), ...]; the last one repeats."""
        with self._lock:
            self._scripts[path] = list(answers)

    def _record(self, req):
        with self._lock:  # a reentrant Condition: recording and counting stay one step
            answer = super()._record(req)
            n = self._counts.get(req.path, 0)
            self._counts[req.path] = n + 1
            if req.path in self._scripts:
                answers = self._scripts[req.path]
                status, headers = answers[min(n, len(answers) - 1)]
                return status, 0.0, headers
            return answer


def scripted(stack) -> ScriptedReceiver:
    r = ScriptedReceiver(stack.ca).start()
    stack._receivers.append(r)
    return r


def dead_letters(kafka_broker, stack, count, timeout=20.0):
    msgs = kafka_broker.consume(stack.api.prefix + "dead", count, timeout=timeout)
    return [(key, json.loads(value)) for key, value, _, _ in msgs]


def metric(d, name):
    return d.metrics().get(name, 0)


def test_fails_three_times_then_delivered_on_the_fourth_and_logged(stack):
    rcv = scripted(stack)
    rcv.script("/flaky", [(500, {}), (500, {}), (500, {}), (200, {})])
    org = stack.new_org()
    hook = stack.api.create_webhook(org, rcv.url("/flaky"), "project.created")
    d = stack.dispatcher(**FAST).wait_ready()
    (eid,) = stack.api.post_events([project_event(org, 1)])
    assert rcv.wait_for(lambda reqs: len(reqs) >= 4, 30), d.proc.tail()
    time.sleep(3.0)  # a fifth delivery would show up by now
    reqs = rcv.requests()
    assert len(reqs) == 4 and {r.headers["webhook-id"] for r in reqs} == {eid}
    gaps = [b.at - a.at for a, b in zip(reqs, reqs[1:])]
    assert all(g >= 0.75 for g in gaps), gaps  # 1 s -20 % jitter
    attempts = [a for a in d.attempts() if a["event_id"] == eid]
    assert [a["attempt"] for a in attempts] == [1, 2, 3, 4]
    assert [a["outcome"] for a in attempts] == ["http_error"] * 3 + ["success"]
    m = d.metrics()
    assert m['hookd_dispatcher_retries_scheduled_total{tier="1s"}'] == 3
    assert m.get('hookd_dispatcher_dead_lettered_total{reason="exhausted"}', 0) == 0
    # the delivery log (GET /api/v1/webhooks/{id}/deliveries), newest first
    def log_entries():
        status, body = http("GET", f"{stack.api.url}/api/v1/webhooks/{hook['id']}/deliveries",
                            token=stack.api.org_token(org))
        assert status == 200, body
        items = body["data"] if isinstance(body, dict) else body
        return items if len(items) == 4 else None
    items = wait_until(log_entries, 10, what="4 delivery-log entries")
    assert [i["attempt"] for i in items] == [4, 3, 2, 1]
    assert [i["status"] for i in items] == [200, 500, 500, 500]
    assert all(i["event_id"] == eid for i in items)
    assert items[0]["error"] is None and items[1]["error"] == "HTTP status 500"
    assert all(i["latency_ms"] >= 0 and i["attempted_at"].endswith("Z") for i in items)


def test_delivery_log_keeps_the_newest_hundred_of_a_burst(stack):
    """A burst of 150 deliveries to one webhook is logged in few flushes (the records of a flush are written as
    one LPUSH per webhook); the log must still hold exactly the 100 newest attempts, newest first."""
    rcv = stack.receiver()
    org = stack.new_org()
    hook = stack.api.create_webhook(org, rcv.url("/burst"), "project.created")
    d = stack.dispatcher().wait_ready()
    ids = stack.api.post_events([project_event(org, i) for i in range(150)])
    assert rcv.wait_for(lambda reqs: len(reqs) >= 150, 30), d.proc.tail()
    wait_until(lambda: len(d.attempts()) >= 150, 10, what="150 attempts logged")
    attempted = [a["event_id"] for a in d.attempts() if a["webhook_id"] == hook["id"]]
    assert sorted(attempted) == sorted(ids)

    def log_entries():
        status, body = http("GET", f"{stack.api.url}/api/v1/webhooks/{hook['id']}/deliveries",
                            token=stack.api.org_token(org))
        assert status == 200, body
        items = body["data"] if isinstance(body, dict) else body
        return items if items and items[0]["event_id"] == attempted[-1] else None
    items = wait_until(log_entries, 10, what="the newest attempt at the head of the delivery log")
    assert [i["event_id"] for i in items] == list(reversed(attempted[-100:]))
    assert all(i["status"] == 200 and i["attempt"] == 1 for i in items)


def test_down_for_the_whole_schedule_dead_letters_then_replay_delivers(stack, kafka_broker):
    rcv = stack.receiver()
    rcv.configure("/down", status=500)
    org = stack.new_org()
    hook = stack.api.create_webhook(org, rcv.url("/down"), "project.updated")
    d = stack.dispatcher(**FAST).wait_ready()
    (eid,) = stack.api.post_events([project_event(org, 2, "project.updated")])
    assert rcv.wait_for(lambda reqs: len(reqs) >= 4, 30), d.proc.tail()
    wait_until(lambda: metric(d, 'hookd_dispatcher_dead_lettered_total{reason="exhausted"}') == 1, 15,
               what="dead-lettered")
    ((key, rec),) = dead_letters(kafka_broker, stack, 1)
    assert key == str(hook["id"])
    assert rec["webhook_id"] == hook["id"] and rec["envelope"]["id"] == eid
    assert rec["webhook_url"] == rcv.url("/down")
    assert rec["reason"] == "gave up after 4 attempts"
    assert rec["dead_lettered_at"].endswith("Z")
    assert [a["attempt"] for a in rec["attempts"]] == [1, 2, 3, 4]
    assert all(a["status"] == 500 and a["error"] == "HTTP status 500" for a in rec["attempts"])
    time.sleep(1.5)
    assert len(rcv.requests()) == 4  # nothing after the last attempt

    # replay: the receiver is fixed; the running dispatcher delivers it with the original id
    rcv.configure("/down", status=200)
    env = dict(d.env)
    r = subprocess.run([str(BIN / "dispatcher"), "replay", "--webhook", str(hook["id"]), "--since",
                        "2020-01-01T00:00:00Z"], env=env, capture_output=True, text=True, timeout=90)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip() == "replayed 1"
    assert any('"hookd_dispatcher_replayed_total":1' in line for line in r.stderr.splitlines()), r.stderr[-2000:]
    assert rcv.wait_for(lambda reqs: len(reqs) >= 5, 20), d.proc.tail()
    fifth = rcv.requests()[4]
    assert fifth.headers["webhook-id"] == eid
    assert verify_signature(hook["secret"], eid, fifth.headers["webhook-timestamp"], fifth.body,
                            fifth.headers["webhook-signature"])
    # a window that excludes it replays nothing
    r = subprocess.run([str(BIN / "dispatcher"), "replay", "--webhook", str(hook["id"]), "--until",
                        "2020-01-01T00:00:00Z"], env=env, capture_output=True, text=True, timeout=90)
    assert r.returncode == 0 and r.stdout.strip() == "replayed 0", r.stderr[-2000:]


def test_the_largest_event_producer_api_accepts_is_retried_and_dead_lettered(stack, kafka_broker):
    """An event as large as producer-api accepts (just under librdkafka's 1,000,000-byte message.max.bytes) fails
    at its receiver: its retry record (the envelope plus the attempt history) and its dead letter must still be
    written, or the event would be stuck: the record retried at every tick, its partition's offset never
    committed past it."""
    rcv = stack.receiver()
    rcv.configure("/big", status=500)
    org = stack.new_org()
    stack.api.create_webhook(org, rcv.url("/big"), "project.updated")
    d = stack.dispatcher(RETRY_SCHEDULE="1s,1s").wait_ready()
    def big(pad):
        return {"type": "project.updated", "organization_id": org, "data": {"id": 7, "pad": "p" * pad}}
    status, body = http("POST", stack.api.url + "/api/v1/events", big(1_010_000), token=stack.api.service_token)
    assert status == 403, body
    size = int(re.search(r"takes (\d+) bytes in Kafka, at most (\d+)", body["errors"][0]["message"]).group(1))
    at_limit = 1_010_000 - (size - 1_000_000)  # the largest pad producer-api accepts
    (eid,) = stack.api.post_events([big(at_limit)])
    assert rcv.wait_for(lambda reqs: len(reqs) >= 3, 30), d.proc.tail()
    assert {r.headers["webhook-id"] for r in rcv.requests()} == {eid}
    wait_until(lambda: metric(d, 'hookd_dispatcher_dead_lettered_total{reason="exhausted"}') == 1, 15,
               what="dead-lettered")
    ((_, rec),) = dead_letters(kafka_broker, stack, 1)
    assert rec["envelope"]["id"] == eid and len(rec["envelope"]["data"]["pad"]) == at_limit
    assert d.metrics()["hookd_dispatcher_retry_write_failures_total"] == 0  # written the first time


def test_a_message_max_bytes_above_the_consumers_fetch_size_does_not_stop_the_dispatcher(stack):
    """KAFKA_MESSAGE_MAX_BYTES is set alike for both services to take larger events (README). librdkafka refuses a
    consumer whose fetch.max.bytes is below its message.max.bytes, and the dispatcher's consumers fetch at most
    2 MiB (a member per event topic 256 KiB): with 5,000,000 the dispatcher exited at start ("`fetch.max.bytes`
    must be >= `message.max.bytes`"). Its consumers now keep their fetch size, and an event larger than it still
    arrives whole, because Kafka returns the first record batch of a fetch however large
    (test_the_largest_event_producer_api_accepts_is_retried_and_dead_lettered sends ~1 MB through 256 KiB
    fetches)."""
    rcv = stack.receiver()
    org = stack.new_org()
    stack.api.create_webhook(org, rcv.url("/roomy"), "project.created")
    d = stack.dispatcher(KAFKA_MESSAGE_MAX_BYTES="5000000").wait_ready()
    big = {"type": "project.created", "organization_id": org, "data": {"id": 8, "pad": "q" * 700_000}}
    (eid,) = stack.api.post_events([big])
    assert rcv.wait_for(lambda reqs: len(reqs) >= 1, 20), d.proc.tail()
    (req,) = rcv.requests()
    assert req.headers["webhook-id"] == eid and len(json.loads(req.body)["data"]["pad"]) == 700_000
    assert d.proc.running


def test_a_retry_record_kafka_cannot_take_is_given_up_once_not_retried_forever(stack):
    """A retry record larger than the retry producer's message.max.bytes (here the dispatcher's limit is set below
    what producer-api accepts; in production, an event a backend wrote to Kafka past producer-api's limit) was
    refused at every 200 ms tick, forever, and its event's offset never committed: every restart delivered it
    again. Now it is given up once, logged as an error and counted, and the offset moves on."""
    rcv = stack.receiver()
    rcv.configure("/fails", status=500)
    org = stack.new_org()
    stack.api.create_webhook(org, rcv.url("/fails"), "project.updated")
    env = dict(RETRY_SCHEDULE="1s", KAFKA_MESSAGE_MAX_BYTES="200000")
    d = stack.dispatcher(**env).wait_ready()
    big = {"type": "project.updated", "organization_id": org, "data": {"id": 1, "pad": "p" * 300_000}}
    big_id, small_id = stack.api.post_events([big, project_event(org, 2, "project.updated")])
    wait_until(lambda: metric(d, "hookd_dispatcher_retry_records_too_large_total") == 1, 20,
               what="the big record given up")
    # the small event's record is written: its retry comes, then its dead letter
    assert rcv.wait_for(lambda reqs: [r.headers["webhook-id"] for r in reqs].count(small_id) == 2, 20)
    wait_until(lambda: metric(d, 'hookd_dispatcher_dead_lettered_total{reason="exhausted"}') == 1, 15,
               what="the small event dead-lettered")
    lines = d.proc.log_lines()
    (given_up,) = [line for line in lines if line.get("msg") == "retry record too large for kafka: the delivery is given up"]
    assert given_up["level"] == "error" and given_up["max_bytes"] == 200_000 + 32_768 and given_up["bytes"] > 300_000
    assert d.metrics()["hookd_dispatcher_retry_write_failures_total"] == 0  # not tried again and again
    # its offset was committed: a successor in the group does not deliver it again
    assert d.proc.stop(timeout=30) == 0
    before = len(rcv.requests())
    stack.dispatcher("successor", **env).wait_ready()
    time.sleep(3)
    assert len(rcv.requests()) == before, [r.headers["webhook-id"] for r in rcv.requests()[before:]]


def test_retry_after_is_honoured(stack):
    rcv = scripted(stack)
    rcv.script("/busy", [(503, {"Retry-After": "3"}), (200, {})])
    org = stack.new_org()
    stack.api.create_webhook(org, rcv.url("/busy"), "user.created")
    d = stack.dispatcher(**FAST).wait_ready()
    stack.api.post_events([project_event(org, 3, "user.created")])
    assert rcv.wait_for(lambda reqs: len(reqs) >= 2, 30), d.proc.tail()
    a, b = rcv.requests()[:2]
    assert b.at - a.at >= 2.9, b.at - a.at
    assert b.at - a.at < 6.0, b.at - a.at


def test_410_gone_is_dead_lettered_at_once(stack, kafka_broker):
    rcv = stack.receiver()
    rcv.configure("/gone", status=410)
    org = stack.new_org()
    hook = stack.api.create_webhook(org, rcv.url("/gone"), "user.updated")
    d = stack.dispatcher(**FAST).wait_ready()
    (eid,) = stack.api.post_events([project_event(org, 4, "user.updated")])
    wait_until(lambda: metric(d, 'hookd_dispatcher_dead_lettered_total{reason="gone"}') == 1, 20,
               what="dead-lettered as gone")
    ((key, rec),) = dead_letters(kafka_broker, stack, 1)
    assert rec["reason"] == "410 Gone" and rec["envelope"]["id"] == eid and rec["webhook_id"] == hook["id"]
    assert len(rec["attempts"]) == 1 and rec["attempts"][0]["status"] == 410
    time.sleep(2.0)
    assert len(rcv.requests()) == 1


def test_kill9_while_retries_are_pending_loses_none(stack):
    rcv = stack.receiver()
    rcv.configure("/k", status=500)
    org = stack.new_org()
    stack.api.create_webhook(org, rcv.url("/k"), "time.entry.created")
    env = {"RETRY_SCHEDULE": "4s,4s,4s"}
    d1 = stack.dispatcher("d1", **env).wait_ready()
    ids = stack.api.post_events([project_event(org, i, "time.entry.created") for i in range(20)])
    wait_until(lambda: metric(d1, 'hookd_dispatcher_retries_scheduled_total{tier="4s"}') >= 20, 20,
               what="20 retries durable")
    d1.proc.kill9()
    assert len(rcv.requests()) == 20  # only first attempts so far: every retry is pending
    rcv.configure("/k", status=200)
    d2 = stack.dispatcher("d2", **env).wait_ready(90)
    assert rcv.wait_for(lambda reqs: {r.headers["webhook-id"] for r in reqs[20:]} >= set(ids), 60), d2.proc.tail()


def test_hanging_receiver_does_not_hold_up_a_healthy_one(stack):
    fast, slow = stack.receiver(), stack.receiver()
    slow.configure("/hang", delay=20)
    org = stack.new_org()
    stack.api.create_webhook(org, slow.url("/hang"), "assignment.created")
    stack.api.create_webhook(org, fast.url("/fast"), "assignment.created")
    # without the per-webhook cap and its bounded queue the hanging receiver would take the whole MAX_IN_FLIGHT
    # budget (queued deliveries count toward it) and pause consumption
    d = stack.dispatcher(MAX_IN_FLIGHT="40", PER_WEBHOOK_IN_FLIGHT="10", PER_WEBHOOK_QUEUE="5", DELIVERY_TIMEOUT="15s",
                         SHUTDOWN_GRACE="1s", LOG_ATTEMPTS="failures", **FAST).wait_ready()
    start = time.monotonic()
    ids = []
    for b in range(10):  # bursts below the cap: the healthy receiver is never over it
        ids += stack.api.post_events([project_event(org, 8 * b + i, "assignment.created") for i in range(8)])
        time.sleep(0.2)
    assert fast.wait_for(lambda reqs: {r.headers["webhook-id"] for r in reqs} >= set(ids), 15), d.proc.tail()
    took = time.monotonic() - start
    assert took < 6, f"healthy receiver waited for the hanging one ({took:.1f}s)"
    # 10 in flight + 5 queued; the other 65 first attempts fail ("receiver backlog full") once the receiver has
    # succeeded in nothing for 2 s (BREAKER_STALL_MS; before that it is taken for a slow one and its deliveries
    # past the queue are parked, to be refused when they come back; the tick then sheds the queue down to 5), and
    # so do their retries (1 s apart) until the schedule ends. Wait until no refusal came for 2 s (a few seconds
    # before the hanging attempts time out), so that the count below is the final one.
    full_key = 'hookd_dispatcher_deliveries_total{outcome="backlog_full",status_class="none"}'
    last = {"value": -1.0, "since": time.monotonic()}

    def refusals_settled() -> bool:
        value = d.metrics().get(full_key, 0)
        if value != last["value"]:
            last.update(value=value, since=time.monotonic())
        return time.monotonic() - last["since"] >= 2.0

    wait_until(refusals_settled, 20, what="refusals to end")
    m = d.metrics()
    assert m[full_key] >= 65
    assert len(slow.requests()) <= 10  # never more than the cap at the hanging receiver
    # LOG_ATTEMPTS=failures: the first refusal gets its own "delivery attempt" line, the rest are summed in one
    # "deliveries refused" line per interval (written at the latest on shutdown); none is lost from the log
    refused = m['hookd_dispatcher_deliveries_total{outcome="backlog_full",status_class="none"}']
    d.proc.stop()
    full = [a for a in d.attempts() if a["outcome"] == "backlog_full"]
    assert len(full) == 1 and full[0]["error"] == "receiver backlog full" and full[0]["status"] == 0, full
    summed = [line for line in d.proc.log_lines() if line.get("msg") == "deliveries refused"]
    assert summed and all(line["url"] == slow.url("/hang") and line["breaker_open"] == 0 for line in summed), summed
    assert len(full) + sum(line["backlog_full"] for line in summed) == refused, (full, summed)
    scheduled = [line for line in d.proc.log_lines() if line.get("msg") == "retry scheduled"]
    assert sum(1 for line in scheduled if line["error"] == "receiver backlog full") == 1, scheduled


def test_healthy_receiver_absorbs_a_burst_past_its_queue_bound(stack):
    """PER_WEBHOOK_QUEUE bounds only a stalled webhook: a receiver that keeps answering takes a burst far larger
    than cap + queue (within MAX_IN_FLIGHT) without a single failed attempt."""
    rcv = stack.receiver()
    org = stack.new_org()
    hook = stack.api.create_webhook(org, rcv.url("/burst"), "assignment.updated")
    d = stack.dispatcher(MAX_IN_FLIGHT="400", PER_WEBHOOK_IN_FLIGHT="4", PER_WEBHOOK_QUEUE="5").wait_ready()
    ids = stack.api.post_events([project_event(org, i, "assignment.updated") for i in range(300)])
    assert rcv.wait_for(lambda reqs: len(reqs) >= 300, 30), d.proc.tail()
    wait_until(lambda: len(d.attempts()) >= 300, 10, what="300 attempts logged")
    attempts = [a for a in d.attempts() if a["webhook_id"] == hook["id"]]
    assert sorted(a["event_id"] for a in attempts) == sorted(ids)
    assert {(a["outcome"], a["attempt"]) for a in attempts} == {("success", 1)}
    m = d.metrics()
    assert m.get('hookd_dispatcher_deliveries_total{outcome="backlog_full",status_class="none"}', 0) == 0
    assert m["hookd_dispatcher_deliveries_queued"] == 0


def test_receiver_answering_in_a_second_is_held_back_not_refused(stack):
    """A receiver that takes a second per answer is slow, not hanging: a burst past cap + queue waits (its partition
    held; once the webhook has been behind for a second, its deliveries parked on a retry tier without using an
    attempt) and every delivery succeeds at its first attempt. With a 0.5 s stall
    threshold its first answers came too late and the burst past the queue failed as "receiver backlog full"
    (checked: 30 and 38 attempts refused)."""
    rcv = stack.receiver()
    rcv.configure("/second", delay=1.0)
    org = stack.new_org()
    hook = stack.api.create_webhook(org, rcv.url("/second"), "assignment.updated")
    d = stack.dispatcher(PER_WEBHOOK_IN_FLIGHT="8", PER_WEBHOOK_QUEUE="4", **FAST).wait_ready()
    ids = []
    for b in range(4):  # after the first one, bursts arrive while the queue is full: they are held in Kafka
        ids += stack.api.post_events([project_event(org, 10 * b + i, "assignment.updated") for i in range(10)])
        time.sleep(0.3)
    assert rcv.wait_for(lambda reqs: {r.headers["webhook-id"] for r in reqs} >= set(ids), 60), d.proc.tail()
    wait_until(lambda: len(d.attempts()) >= len(ids), 10, what="every attempt logged")
    attempts = [a for a in d.attempts() if a["webhook_id"] == hook["id"]]
    assert {(a["outcome"], a["attempt"]) for a in attempts} == {("success", 1)}, attempts
    assert sorted(a["event_id"] for a in attempts) == sorted(ids)
    m = d.metrics()
    assert m.get('hookd_dispatcher_deliveries_total{outcome="backlog_full",status_class="none"}', 0) == 0
    assert m["hookd_dispatcher_backlog_holds_total"] + m["hookd_dispatcher_deliveries_parked_total"] >= 1


def test_breaker_opens_after_failures_and_closes_after_a_probe(stack):
    rcv = stack.receiver()
    rcv.configure("/b", status=500)
    org = stack.new_org()
    hook = stack.api.create_webhook(org, rcv.url("/b"), "assignment.updated")
    d = stack.dispatcher(BREAKER_FAILURES="3", RETRY_SCHEDULE=",".join(["1s"] * 10)).wait_ready()
    first = stack.api.post_events([project_event(org, i, "assignment.updated") for i in range(3)])
    wait_until(lambda: metric(d, "hookd_dispatcher_breakers_open") == 1, 15, what="breaker open")
    later = stack.api.post_events([project_event(org, 10 + i, "assignment.updated") for i in range(5)])
    # while open, a delivery is not sent but uses its attempt ("circuit breaker open", status null) and takes
    # the retry schedule like any failed attempt (so a receiver that stays down is dead-lettered in time)
    wait_until(lambda: metric(d, 'hookd_dispatcher_deliveries_total{outcome="breaker_open",status_class="none"}') >= 5,
               15, what="new deliveries refused")
    # while open: no first attempts of the later events reach the receiver
    assert not {r.headers["webhook-id"] for r in rcv.requests()} & set(later)
    # half-open: at most one probe at a time
    wait_until(lambda: any(line.get("msg") == "circuit breaker half-open: probing" for line in d.proc.log_lines()),
               10, what="a probe")
    rcv.configure("/b", status=200)
    wait_until(lambda: metric(d, "hookd_dispatcher_breakers_open") == 0, 20, what="breaker closed")
    assert any(line.get("msg") == "circuit breaker closed" for line in d.proc.log_lines())
    # everything still pending gets delivered
    wait_until(lambda: {a["event_id"] for a in d.attempts() if a["outcome"] == "success"} >= set(later), 20,
               what="the refused events delivered")
    # every attempt number is used once, refusals included: an event's successful attempt number is 1 + the
    # failed attempts logged before it (sent or refused)
    attempts = d.attempts()
    ok = [a for a in attempts if a["event_id"] in later and a["outcome"] == "success"]
    for a in ok:
        failed = [x for x in attempts if x["event_id"] == a["event_id"] and x["outcome"] != "success"]
        assert a["attempt"] == 1 + len(failed), (a, failed)
        assert any(x["outcome"] == "breaker_open" and x["error"] == "circuit breaker open" for x in failed), failed
    # the delivery log shows the refusals with status null
    status, body = http("GET", f"{stack.api.url}/api/v1/webhooks/{hook['id']}/deliveries", token=stack.api.org_token(org))
    assert status == 200, body
    items = body["data"] if isinstance(body, dict) else body
    assert any(i["status"] is None and i["error"] == "circuit breaker open" for i in items), items


def test_refusals_of_a_down_receiver_are_summed_in_the_log_and_none_is_lost(stack):
    """LOG_ATTEMPTS=failures: while a webhook's breaker is open, its refused deliveries (new events and due
    retries) are not logged one by one: the first gets its lines, the rest are counted into "deliveries refused"
    lines, dead-lettered ones included. Every refusal and dead letter is in the metrics, and the logged plus the
    summed add up to them exactly."""
    rcv = stack.receiver()
    rcv.configure("/down", status=500)
    org = stack.new_org()
    hook = stack.api.create_webhook(org, rcv.url("/down"), "assignment.created")
    d = stack.dispatcher(BREAKER_FAILURES="1", RETRY_SCHEDULE="1s", LOG_ATTEMPTS="failures").wait_ready()
    stack.api.post_events([project_event(org, 0, "assignment.created")])
    wait_until(lambda: metric(d, "hookd_dispatcher_breakers_open") == 1, 15, what="breaker open")
    n = 40
    stack.api.post_events([project_event(org, 1 + i, "assignment.created") for i in range(n)])
    wait_until(lambda: metric(d, 'hookd_dispatcher_dead_lettered_total{reason="exhausted"}') >= n + 1, 30,
               what="every event dead-lettered after its two attempts")
    m = d.metrics()
    d.proc.stop()
    refused = m['hookd_dispatcher_deliveries_total{outcome="breaker_open",status_class="none"}']
    dead = m['hookd_dispatcher_dead_lettered_total{reason="exhausted"}']
    assert refused >= n, m  # the 40 first attempts at least (half-open probes are real attempts)
    lines = d.proc.log_lines()
    logged = [x for x in lines if x.get("msg") == "delivery attempt" and x["outcome"] == "breaker_open"]
    summed = [x for x in lines if x.get("msg") == "deliveries refused"]
    logged_dead = [x for x in lines if x.get("msg") == "delivery dead-lettered"]
    assert summed and all(x["webhook_id"] == hook["id"] and x["backlog_full"] == 0 for x in summed), summed
    assert len(logged) + sum(x["breaker_open"] for x in summed) == refused, (logged, summed, refused)
    assert len(logged_dead) + sum(x["dead_lettered"] for x in summed) == dead, (logged_dead, summed, dead)
    assert len(logged) < refused / 4, f"{len(logged)} of {refused} refusals logged one by one"
    scheduled = [x for x in lines if x.get("msg") == "retry scheduled" and x["error"] == "circuit breaker open"]
    assert len(scheduled) <= len(logged), (scheduled, logged)


def test_both_signatures_verify_during_a_rotation(stack):
    rcv = stack.receiver()
    org = stack.new_org()
    hook = stack.api.create_webhook(org, rcv.url("/rot"), "project.created")
    d = stack.dispatcher(**FAST).wait_ready()
    status, rotated = http("POST", f"{stack.api.url}/api/v1/webhooks/{hook['id']}/rotate_secret",
                           token=stack.api.org_token(org))
    assert status == 200, rotated
    new_secret, old_secret = rotated["secret"], hook["secret"]
    assert new_secret != old_secret
    time.sleep(1.0)  # the cache drops within one version poll
    (eid,) = stack.api.post_events([project_event(org, 5)])
    assert rcv.wait_for(lambda reqs: len(reqs) == 1, 20), d.proc.tail()
    r = rcv.requests()[0]
    sig = r.headers["webhook-signature"]
    parts = sig.split(" ")
    assert len(parts) == 2 and all(p.startswith("v1,") for p in parts), sig
    ts = r.headers["webhook-timestamp"]

    def one(secret, part):
        key = base64.b64decode(secret[len("whsec_"):])
        mac = hmac.new(key, f"{eid}.{ts}.".encode() + r.body, hashlib.sha256).digest()
        return hmac.compare_digest("v1," + base64.b64encode(mac).decode(), part)

    assert one(new_secret, parts[0]) and one(old_secret, parts[1])
    assert not one(old_secret, parts[0])


def test_retry_of_a_deleted_webhook_is_dropped_and_counted(stack):
    rcv = stack.receiver()
    rcv.configure("/del", status=500)
    org = stack.new_org()
    hook = stack.api.create_webhook(org, rcv.url("/del"), "project.created")
    d = stack.dispatcher(RETRY_SCHEDULE="2s,2s,2s").wait_ready()
    stack.api.post_events([project_event(org, 6)])
    assert rcv.wait_for(lambda reqs: len(reqs) == 1, 20)
    stack.api.delete_webhook(org, hook["id"])
    wait_until(lambda: metric(d, "hookd_dispatcher_retries_dropped_total") == 1, 20, what="retry dropped")
    assert any(line.get("msg") == "retry dropped: the webhook no longer exists" for line in d.proc.log_lines())
    assert len(rcv.requests()) == 1


def test_invalid_retry_schedule_exits_2():
    from support.services import free_port
    for bad in ("soon", "1s,,2s", "0s", ""):
        env = dict(os.environ, METRICS_ADDR=f"127.0.0.1:{free_port()}", RETRY_SCHEDULE=bad or ",")
        out = subprocess.run([str(BIN / "dispatcher")], env=env, capture_output=True, text=True, timeout=20)
        assert out.returncode == 2, (bad, out.stderr)
        assert "RETRY_SCHEDULE" in out.stderr
