"""End-to-end: crashes, restarts, group sharing, graceful shutdown and a Redis stall."""

import collections
import json
import signal
import time

from conftest import PARTITIONS, Stack, http, kafka_partition, wait_until
from support.event_types import EVENT_TYPES
from support.services import AofRedis, RedisServer
from test_delivery import envelope, project_event

# Without a retry stage a backlogged webhook's partition is held (with one, its deliveries are parked instead)
HOLD = {"RETRY_SCHEDULE": "none"}

TYPES = ["project.created", "time.entry.created", "user.created", "assignment.updated"]


def pairs(receivers):
    """Counter of (path, event id) over every request the receivers got."""
    c = collections.Counter()
    for r in receivers:
        for req in r.requests():
            c[(req.path, req.headers["webhook-id"])] += 1
    return c


def org_per_partition(stack):
    """{partition: a new organization whose key hashes to it}, one for each partition of a topic."""
    orgs = {}
    while len(orgs) < PARTITIONS:
        org = stack.new_org()
        orgs.setdefault(kafka_partition(str(org), PARTITIONS), org)
    return orgs


def setup_hooks(stack, rcv, org, n_hooks=2, types=TYPES):
    for t in types:
        for i in range(n_hooks):
            stack.api.create_webhook(org, rcv.url(f"/{t}/{i}"), t)


def events_for(org, count, types=TYPES):
    return [project_event(org, i, types[i % len(types)]) for i in range(count)]


def expected_pairs(ids, events, n_hooks=2):
    return {(f"/{ev['type']}/{i}", eid) for eid, ev in zip(ids, events) for i in range(n_hooks)}


def test_kill9_mid_stream_then_restart_delivers_everything(stack):
    rcv = stack.receiver()
    for t in TYPES:
        for i in range(2):
            rcv.configure(f"/{t}/{i}", delay=0.05)
    org = stack.new_org()
    setup_hooks(stack, rcv, org)
    d1 = stack.dispatcher("d1", MAX_IN_FLIGHT="20").wait_ready()
    events = events_for(org, 200)
    ids = stack.api.post_events(events)
    want = expected_pairs(ids, events)
    assert rcv.wait_for(lambda reqs: len(reqs) >= 60, 30), d1.proc.tail()
    d1.proc.kill9()
    got_before = len(rcv.requests())
    assert got_before < len(want), "too late: everything was delivered before the kill"
    d2 = stack.dispatcher("d2").wait_ready(90)
    assert rcv.wait_for(lambda reqs: set(pairs([rcv])) >= want, 90), d2.proc.tail()
    assert set(pairs([rcv])) == want  # nothing foreign


def test_kill9_repeats_nothing_finished_two_seconds_before(stack):
    """Offsets are committed every 250 ms (auto.commit.interval.ms, not librdkafka's 5 s): a dispatcher killed
    1 s after its last delivery leaves nothing for its successor to repeat."""
    rcv = stack.receiver()
    org = stack.new_org()
    stack.api.create_webhook(org, rcv.url("/k"), "project.created")
    d1 = stack.dispatcher("d1").wait_ready()
    ids = stack.api.post_events([project_event(org, n) for n in range(40)])
    assert rcv.wait_for(lambda reqs: len(reqs) >= 40, 30), d1.proc.tail()
    time.sleep(1.0)
    d1.proc.kill9()
    later = stack.api.post_events([project_event(org, 100 + n) for n in range(10)])
    d2 = stack.dispatcher("d2").wait_ready(90)
    assert rcv.wait_for(lambda reqs: len(reqs) >= 50, 60), d2.proc.tail()
    time.sleep(1.5)  # a repeat would come with the later events or right after them
    seen = [r.headers["webhook-id"] for r in rcv.requests()]
    assert sorted(seen) == sorted(ids + later), collections.Counter(seen).most_common(3)


def test_two_dispatchers_share_the_group_exactly_once(stack):
    """An organization's events share one partition per topic (its key), and each member may hold the same
    partition number of every topic (one librdkafka client per topic, each balanced on its own): an organization
    keyed to each partition, so both members get events whatever they were assigned."""
    rcv = stack.receiver()
    orgs = org_per_partition(stack)
    for org in orgs.values():
        setup_hooks(stack, rcv, org)
    d1 = stack.dispatcher("d1").wait_ready()
    d2 = stack.dispatcher("d2").wait_ready()
    total = stack.partitions_total
    wait_until(lambda: d1.assigned() + d2.assigned() == total and d1.assigned() > 0 and d2.assigned() > 0, 60,
               what="the partitions split between both members")
    time.sleep(2)  # calm: no rebalance in progress
    assert d1.assigned() + d2.assigned() == total
    events = [ev for org in orgs.values() for ev in events_for(org, 300 // len(orgs))]
    ids = stack.api.post_events(events)
    want = expected_pairs(ids, events)
    assert rcv.wait_for(lambda reqs: len(reqs) >= len(want), 60)
    time.sleep(1.5)
    got = pairs([rcv])
    assert set(got) == want
    assert max(got.values()) == 1, [k for k, v in got.items() if v > 1][:5]
    a1, a2 = len(d1.attempts()), len(d2.attempts())
    assert a1 + a2 == len(want) and a1 > 0 and a2 > 0


def test_sigterm_finishes_in_flight_and_loses_nothing(stack):
    rcv = stack.receiver()
    for t in TYPES:
        for i in range(2):
            rcv.configure(f"/{t}/{i}", delay=1.0)
    org = stack.new_org()
    setup_hooks(stack, rcv, org)
    d1 = stack.dispatcher("d1", MAX_IN_FLIGHT="40").wait_ready()
    events = events_for(org, 100)
    ids = stack.api.post_events(events)
    want = expected_pairs(ids, events)
    assert rcv.wait_for(lambda reqs: len(reqs) >= 10, 30)
    started = time.monotonic()
    d1.proc.signal(signal.SIGTERM)
    assert d1.proc.wait(timeout=25) == 0
    assert time.monotonic() - started < 20
    lines = d1.proc.log_lines()
    assert any(line["msg"] == "offsets committed" for line in lines)
    assert not any("abandoning" in line["msg"] for line in lines)
    # every attempt that started finished (the receiver answered it) before the exit
    attempts_d1 = d1.attempts()
    got_d1 = pairs([rcv])
    missing = {(a["url"].split(str(rcv.port), 1)[1], a["event_id"]) for a in attempts_d1} - set(got_d1)
    assert not missing, (len(missing), sorted(missing)[:3], len(rcv.requests()), time.monotonic() - started)
    assert len(attempts_d1) == len(rcv.requests())
    assert all(a["outcome"] == "success" for a in attempts_d1)
    # a successor delivers the rest, and nothing that d1 finished is delivered again
    d2 = stack.dispatcher("d2").wait_ready(60)
    assert rcv.wait_for(lambda reqs: set(pairs([rcv])) >= want, 120), d2.proc.tail()
    time.sleep(1.0)
    got = pairs([rcv])
    assert set(got) == want
    assert max(got.values()) == 1, [k for k, v in got.items() if v > 1][:5]


def test_redis_stall_holds_uncached_events_then_delivers(stack, redis_server, kafka_broker):
    rcv = stack.receiver()
    org = stack.new_org()
    stack.api.create_webhook(org, rcv.url("/r"), "project.updated")
    d = stack.dispatcher().wait_ready()
    topic = stack.api.prefix + "project.updated"
    redis_server.cli("CLIENT", "PAUSE", "7000", "ALL")
    for i in range(3):
        kafka_broker.produce(topic, envelope(f"stall-{i}", org, i, "project.updated"), key=str(org))
    wait_until(lambda: d.metrics()["hookd_dispatcher_redis_up"] == 0, 10, what="redis seen down")
    assert rcv.requests() == []
    assert rcv.wait_for(lambda reqs: {r.headers["webhook-id"] for r in reqs} == {"stall-0", "stall-1", "stall-2"},
                        20), d.proc.tail()
    wait_until(lambda: d.ready(), 10, what="ready again")
    m = d.metrics()
    assert m["hookd_dispatcher_redis_up"] == 1 and m["hookd_dispatcher_consumption_paused"] == 0
    assert d.proc.running


def test_events_waiting_for_a_stalled_redis_go_out_together_when_it_answers(stack, redis_server, kafka_broker):
    """An event whose subscribers are not cached waits while Redis stalls; another event of the same organization
    produced meanwhile is fetched and waits behind it. When Redis answers both go out within a few ms.
    Before, the first paused consumption and the second stayed in Kafka until the resume, 340-390 ms more
    (librdkafka 2.0.2's resume does not wake its fetcher) until the resume kicked the fetcher (consumer.c,
    consumer_set_paused). Three rounds, a fresh organization each (a cached one would not need Redis); the median
    gap is what is asserted."""
    rcv = stack.receiver()
    d = stack.dispatcher().wait_ready()
    topic = stack.api.prefix + "project.updated"
    gaps = []
    for n in range(3):
        org = stack.new_org()
        stack.api.create_webhook(org, rcv.url(f"/stall{n}"), "project.updated")
        redis_server.freeze()
        try:
            kafka_broker.produce(topic, envelope(f"first-{n}", org, 0, "project.updated"), key=str(org))
            wait_until(lambda: d.metrics()["hookd_dispatcher_events_waiting_for_redis"] == 1, 30, what="waiting")
            kafka_broker.produce(topic, envelope(f"second-{n}", org, 1, "project.updated"), key=str(org))
            wait_until(lambda: d.metrics()["hookd_dispatcher_events_waiting_for_redis"] == 2, 30, what="both waiting")
            assert rcv.requests(f"/stall{n}") == []
        finally:
            redis_server.thaw()
        assert rcv.wait_for(lambda reqs: len([r for r in reqs if r.path == f"/stall{n}"]) == 2, 20), d.proc.tail()
        at = {r.headers["webhook-id"]: r.at for r in rcv.requests(f"/stall{n}")}
        gaps.append(abs(at[f"second-{n}"] - at[f"first-{n}"]))  # both start in the same pass (in any order)
    assert sorted(gaps)[1] < 0.15, gaps
    assert d.metrics()["hookd_dispatcher_consumption_paused"] == 0


def cached_organization(stack, path, **env):
    """A receiver, an organization with a project.updated webhook to path on it, and a ready dispatcher (env: its
    settings) that has delivered one event of it (so it has the organization's subscribers cached):
    (rcv, org, hook, d, topic)."""
    rcv = stack.receiver()
    org = stack.new_org()
    hook = stack.api.create_webhook(org, rcv.url(path), "project.updated")
    d = stack.dispatcher(**env).wait_ready()
    stack.api.post_events([project_event(org, 0, "project.updated")])
    assert rcv.wait_for(lambda reqs: len(reqs) == 1, 20), d.proc.tail()
    return rcv, org, hook, d, stack.api.prefix + "project.updated"


def test_cached_subscribers_keep_receiving_while_redis_stalls(stack, redis_server, kafka_broker):
    """Redis stalls (SIGSTOP: connections stay open, nothing answers). The version read and the delivery-log writes
    run on the dispatcher's Redis thread (redis_worker.c), so the event loop does not wait for them: events for an
    organization whose subscribers are cached are delivered as usual. Before, the loop sat in a 2 s read timeout at
    the next tick, and again at each retry, and nothing was delivered meanwhile. redis_up says 0 while the stall
    lasts, and the attempts made meanwhile reach the delivery log once Redis answers."""
    rcv, org, hook, d, topic = cached_organization(stack, "/cached")
    waits = []
    redis_server.freeze()
    try:
        for i in range(6):
            kafka_broker.produce(topic, envelope(f"cached-{i}", org, i, "project.updated"), key=str(org))
            produced = time.monotonic()
            assert rcv.wait_for(lambda reqs: any(r.headers["webhook-id"] == f"cached-{i}" for r in reqs), 10), \
                d.proc.tail()
            (r,) = [r for r in rcv.requests("/cached") if r.headers["webhook-id"] == f"cached-{i}"]
            waits.append(round(max(0.0, r.at - produced), 3))
            time.sleep(0.3)
        up_during = d.metrics()["hookd_dispatcher_redis_up"]
    finally:
        redis_server.thaw()
    assert max(waits) < 1.0, waits
    assert up_during == 0
    wait_until(lambda: d.metrics()["hookd_dispatcher_redis_up"] == 1, 10, what="redis up again")

    def logged():
        status, body = http("GET", f"{stack.api.url}/api/v1/webhooks/{hook['id']}/deliveries",
                            token=stack.api.org_token(org))
        assert status == 200, body
        return {i["event_id"] for i in body["data"]} >= {f"cached-{i}" for i in range(6)}
    wait_until(logged, 10, what="the stall's attempts in the delivery log")


def test_a_lookup_never_holds_the_dispatchers_event_loop(stack, redis_server, kafka_broker):
    """The subscriber lists a dispatcher does not have are read on its Redis thread, never on its event loop. Redis
    stalls (SIGSTOP); an event of an organization that is not cached is consumed, then one of a cached organization:
    the second is delivered within ms, the first once Redis answers. Before, the first event's lookup ran on the
    loop and sat in a 2 s read timeout (unless the Redis thread had already waited 250 ms on the stall), and every
    event behind it, of any organization, waited as long."""
    rcv, org, hook, d, topic = cached_organization(stack, "/cached")
    other = stack.new_org()
    stack.api.create_webhook(other, rcv.url("/uncached"), "project.updated")
    time.sleep(0.5)  # the change is applied (only the other organization's entry)
    redis_server.freeze()
    try:
        kafka_broker.produce(topic, envelope("uncached", other, 0, "project.updated"), key=str(other))
        time.sleep(0.1)  # consumed, its lookup asked for
        produced = time.monotonic()
        kafka_broker.produce(topic, envelope("cached", org, 1, "project.updated"), key=str(org))
        assert rcv.wait_for(lambda reqs: any(r.headers["webhook-id"] == "cached" for r in reqs), 10), d.proc.tail()
        (r,) = [r for r in rcv.requests("/cached") if r.headers["webhook-id"] == "cached"]
        assert r.at - produced < 0.5, r.at - produced
        assert rcv.requests("/uncached") == []
    finally:
        redis_server.thaw()
    assert rcv.wait_for(lambda reqs: any(r.headers["webhook-id"] == "uncached" for r in reqs), 20), d.proc.tail()


def test_a_brief_redis_stall_keeps_the_subscriber_cache(stack, redis_server, kafka_broker):
    """Redis answers nothing for 1.2 s (CLIENT PAUSE), less than a call's 2 s timeout: the dispatcher counts it as
    stalled once a call has waited 250 ms (lookups wait, redis_up 0), and when the call answers it keeps its
    subscriber cache: nothing was missed, and the next changes read lists any change made meanwhile. Before, the
    end of any stall dropped the whole cache, so a CPU-throttled pod or a Redis pause of a quarter second made
    every organization's next event an HVALS on the loop."""
    rcv, org, hook, d, topic = cached_organization(stack, "/brief")
    before = d.metrics()
    redis_server.cli("CLIENT", "PAUSE", "1200", "ALL")
    wait_until(lambda: d.metrics()["hookd_dispatcher_redis_up"] == 0, 5, what="the stall seen")
    wait_until(lambda: d.metrics()["hookd_dispatcher_redis_up"] == 1, 10, what="redis answering again")
    kafka_broker.produce(topic, envelope("after-stall", org, 1, "project.updated"), key=str(org))
    assert rcv.wait_for(lambda reqs: any(r.headers["webhook-id"] == "after-stall" for r in reqs), 10), d.proc.tail()
    after = d.metrics()
    assert after["hookd_dispatcher_subscriber_cache_flushes_total"] == before["hookd_dispatcher_subscriber_cache_flushes_total"]
    assert after["hookd_dispatcher_subscriber_cache_misses_total"] == before["hookd_dispatcher_subscriber_cache_misses_total"]
    msgs = [line.get("msg") for line in d.proc.log_lines()]
    assert "redis answering again after a stall; subscriber cache kept" in msgs, msgs[-20:]


def test_an_event_waiting_for_redis_holds_back_no_cached_organization(stack, redis_server, kafka_broker):
    """Redis stalls. An event of an organization whose subscribers are not cached waits for it; the events of an
    organization whose subscribers are cached, consumed after it, are delivered meanwhile, and the waiting one once
    Redis answers. Before, the first waiting event paused consumption and every event behind it, of any
    organization, waited for Redis too."""
    rcv, org, hook, d, topic = cached_organization(stack, "/cached")
    other = stack.new_org()
    stack.api.create_webhook(other, rcv.url("/uncached"), "project.updated")
    waiting = "hookd_dispatcher_events_waiting_for_redis"
    redis_server.freeze()
    try:
        kafka_broker.produce(topic, envelope("uncached-0", other, 0, "project.updated"), key=str(other))
        wait_until(lambda: d.metrics()[waiting] == 1, 15, what="the uncached event waits")
        ids = [f"cached-{i}" for i in range(3)]
        for i, eid in enumerate(ids):
            kafka_broker.produce(topic, envelope(eid, org, i + 1, "project.updated"), key=str(org))
        assert rcv.wait_for(lambda reqs: {r.headers["webhook-id"] for r in reqs} >= set(ids), 10), d.proc.tail()
        assert rcv.requests("/uncached") == [] and d.metrics()[waiting] == 1
    finally:
        redis_server.thaw()
    assert rcv.wait_for(lambda reqs: [r.headers["webhook-id"] for r in reqs if r.path == "/uncached"] == ["uncached-0"],
                        20), d.proc.tail()
    wait_until(lambda: d.metrics()[waiting] == 0, 10, what="nothing waits")


def test_subscribers_cached_past_their_age_are_used_while_redis_is_down(stack, redis_server, kafka_broker):
    """A cached subscriber list is read again once older than SUBSCRIBER_CACHE_MAX_AGE. While Redis does not answer,
    the list read last is used still (counted as a stale hit) rather than the organization's events waiting for
    Redis; once it answers, the list is read again."""
    rcv, org, hook, d, topic = cached_organization(stack, "/aged", SUBSCRIBER_CACHE_MAX_AGE="1s")
    redis_server.freeze()
    try:
        wait_until(lambda: d.metrics()["hookd_dispatcher_redis_up"] == 0, 10, what="redis seen down")
        time.sleep(1.2)  # the cached list is past its age now
        ids = [f"aged-{i}" for i in range(3)]
        for i, eid in enumerate(ids):
            kafka_broker.produce(topic, envelope(eid, org, i + 1, "project.updated"), key=str(org))
        assert rcv.wait_for(lambda reqs: {r.headers["webhook-id"] for r in reqs} >= set(ids), 10), d.proc.tail()
        m = d.metrics()
        assert m["hookd_dispatcher_subscriber_cache_stale_hits_total"] >= 3
        assert m["hookd_dispatcher_events_waiting_for_redis"] == 0
    finally:
        redis_server.thaw()
    wait_until(lambda: d.metrics()["hookd_dispatcher_redis_up"] == 1, 10, what="redis up again")

    def reads():  # a lookup on the loop (the cache was dropped: the stall outlasted a call) or a refresh
        m = d.metrics()
        return m["hookd_dispatcher_subscriber_cache_misses_total"] + m["hookd_dispatcher_subscriber_cache_refreshes_total"]
    before = reads()
    kafka_broker.produce(topic, envelope("after", org, 9, "project.updated"), key=str(org))
    assert rcv.wait_for(lambda reqs: any(r.headers["webhook-id"] == "after" for r in reqs), 10)
    wait_until(lambda: reads() > before, 5, what="the aged list read again")


def test_attempts_made_while_redis_is_down_reach_the_delivery_log(kafka_broker, test_ca, tmp_path):
    """Redis stops (connections refused) while a dispatcher keeps delivering to subscribers it has cached. The
    attempts wait on the Redis thread and are written when Redis is back. Before, each 200 ms round's write found
    Redis unreachable and dropped its records: the outage left a hole in the log. A Redis of its own, with AOF as
    deploy/ runs it, so that the webhooks and tokens survive the restart."""
    redis = AofRedis(tmpdir=str(tmp_path / "redis")).start()
    stack = Stack(redis, kafka_broker, test_ca, str(tmp_path))
    try:
        rcv, org, hook, d, topic = cached_organization(stack, "/down")

        def logged_ids():
            status, body = http("GET", f"{stack.api.url}/api/v1/webhooks/{hook['id']}/deliveries",
                                token=stack.api.org_token(org))
            assert status == 200, body
            return {i["event_id"] for i in body["data"]}
        # The first delivery's record written before Redis stops: a write the stop cuts off is lost by design (sent
        # again it could be logged twice, redis_worker.c), and in one clean-clone CI run (2026-12-07) the stop met
        # that write. This test is about the attempts made during the outage.
        first = rcv.requests()[0].headers["webhook-id"]
        wait_until(lambda: first in logged_ids(), 10, what="the first delivery in the delivery log")
        redis.stop()
        ids = [f"down-{i}" for i in range(3)]
        for i, eid in enumerate(ids):
            kafka_broker.produce(topic, envelope(eid, org, i + 1, "project.updated"), key=str(org))
        assert rcv.wait_for(lambda reqs: {r.headers["webhook-id"] for r in reqs} >= set(ids), 20), d.proc.tail()
        wait_until(lambda: d.metrics()["hookd_dispatcher_redis_up"] == 0, 10, what="redis seen down")
        time.sleep(1.0)  # several of the Redis thread's rounds find Redis gone
        redis.resume()
        wait_until(lambda: d.metrics()["hookd_dispatcher_redis_up"] == 1, 15, what="redis up again")

        wait_until(lambda: logged_ids() >= set(ids), 10, what="the outage's attempts in the delivery log")
        m = d.metrics()
        assert m["hookd_dispatcher_delivery_log_dropped_total"] == 0, {k: v for k, v in m.items() if "redis" in k or "log" in k}
    finally:
        stack.close()
        redis.stop()


def test_kafka_restart_consumption_resumes_by_itself(stack, kafka_broker):
    rcv = stack.receiver()
    org = stack.new_org()
    stack.api.create_webhook(org, rcv.url("/k"), "user.updated")
    d = stack.dispatcher().wait_ready()
    (e1,) = stack.api.post_events([project_event(org, 1, "user.updated")])
    assert rcv.wait_for(lambda reqs: len(reqs) == 1, 20)
    kafka_broker.stop()
    try:
        wait_until(lambda: not d.ready(), 30, what="not ready while Kafka is down")
        time.sleep(2)
        assert d.proc.running
    finally:
        kafka_broker.start()
    wait_until(d.ready, 90, what=f"ready again\n{d.proc.tail()}")
    ids = wait_until(lambda: _post_when_possible(stack, org), 60, what="producer-api accepting events")
    assert rcv.wait_for(lambda reqs: {r.headers["webhook-id"] for r in reqs} == {e1, *ids}, 60), d.proc.tail()


def _post_when_possible(stack, org):
    try:
        return stack.api.post_events([project_event(org, i, "user.updated") for i in range(2, 5)])
    except AssertionError:
        return None


def test_kill9_while_a_partition_waits_for_a_slow_webhook_loses_nothing(stack):
    """Without retries (nowhere to park), a backlogged webhook's partition is held at a put-back event (offset
    untracked, partition seeked back): a crash while it is held must still leave that event, and everything after
    it, to the successor."""
    rcv = stack.receiver()
    rcv.configure("/slow", delay=0.05)
    org = stack.new_org()
    stack.api.create_webhook(org, rcv.url("/slow"), "project.created")
    d1 = stack.dispatcher("d1", **HOLD).wait_ready()
    ids = stack.api.post_events([project_event(org, n) for n in range(1500)])
    wait_until(lambda: d1.metrics()["hookd_dispatcher_backlog_holds_total"] > 0, 30, what="a backlog hold")
    time.sleep(1.5)  # offsets committed while the partition is held
    d1.proc.kill9()
    assert len(rcv.requests()) < 1500, "too late: everything was delivered before the kill"
    d2 = stack.dispatcher("d2").wait_ready(90)
    assert rcv.wait_for(lambda reqs: {r.headers["webhook-id"] for r in reqs} >= set(ids), 90), d2.proc.tail()
    assert {r.headers["webhook-id"] for r in rcv.requests()} == set(ids)  # nothing foreign


def test_partitions_held_for_slow_webhooks_survive_a_rebalance(stack):
    """Partitions held for backlogged webhooks (without retries) (paused, seeked back) while a second member joins and leaves: the
    revoked ones are consumed by the other member, the ones given back are consumed again, nothing is lost. Both
    partitions of the topic carry slow webhooks, so the joining member takes a held one most of the time. Failed
    once in clean-clone CI (under ASan: 1,469 of 1,600 delivered, the rest never): librdkafka 2.0 keeps a pause
    across revocation, so a partition revoked while held came back paused with no hold left to resume it; every
    held partition is now resumed as it is revoked (consumer.c, rebalance_cb)."""
    rcv = stack.receiver()
    rcv.configure("/slow", delay=0.05)
    orgs, per_partition = [], {}
    while len(orgs) < 4:  # two organizations on each partition of the topic
        org = stack.new_org()
        p = kafka_partition(str(org), PARTITIONS)
        if per_partition.get(p, 0) < 4 // PARTITIONS:
            per_partition[p] = per_partition.get(p, 0) + 1
            orgs.append(org)
    for org in orgs:
        stack.api.create_webhook(org, rcv.url("/slow"), "project.created")
    # A hold needs a fresh event for a webhook whose queue holds PER_WEBHOOK_QUEUE: with the default 200, the
    # first intake sometimes spread ~234 over each of the four queues, the next came only once they were below 200,
    # and everything was delivered (in ~3 s) with fewer than two holds. 50, and ~6 s of work, hold for certain.
    slow_env = {"PER_WEBHOOK_QUEUE": "50", **HOLD}
    d1 = stack.dispatcher("d1", **slow_env).wait_ready()
    ids = stack.api.post_events([project_event(org, n) for n in range(1000) for org in orgs])
    wait_until(lambda: d1.metrics()["hookd_dispatcher_backlog_holds_total"] >= 2, 30, what="backlog holds")
    d2 = stack.dispatcher("d2", **slow_env).wait_ready()
    total = stack.partitions_total
    wait_until(lambda: d1.assigned() + d2.assigned() == total and d2.assigned() > 0, 60, what="a shared group")
    time.sleep(1.0)
    d2.proc.signal(signal.SIGTERM)
    assert d2.proc.wait(60) == 0
    wait_until(lambda: d1.assigned() == total, 60, what="d1 takes every partition back")
    assert rcv.wait_for(lambda reqs: {r.headers["webhook-id"] for r in reqs} >= set(ids), 120), \
        f"{len({r.headers['webhook-id'] for r in rcv.requests()})} of {len(ids)} delivered\n{d1.proc.tail()}"


def test_partitions_revoked_while_redis_is_down_are_consumed_when_they_come_back(stack, redis_server, kafka_broker):
    """A member (with a Redis of its own) joins while the first one's Redis is down and an event of it waits for
    Redis, and leaves after the outage; then every partition of every topic gets an event, and each must be
    delivered. (When consumption was paused during a Redis outage, librdkafka kept a partition's pause across
    revocation: a partition revoked during the outage came back paused with nothing left to resume it, and its
    events waited for the next rebalance. Consumption no longer pauses for Redis; revocation still must not strand
    a partition.)"""
    rcv = stack.receiver()
    orgs = org_per_partition(stack)
    for t in EVENT_TYPES:
        for org in orgs.values():
            stack.api.create_webhook(org, rcv.url(f"/{t}/{org}"), t)
    d1 = stack.dispatcher("d1").wait_ready()
    total = stack.partitions_total
    wait_until(lambda: d1.assigned() == total, 60, what="d1 holds every partition")
    other_redis = RedisServer().start()
    try:
        # frozen (SIGSTOP) rather than CLIENT PAUSE: the outage lasts until the rebalance is done, not a fixed 15 s
        redis_server.freeze()
        try:
            kafka_broker.produce(stack.api.prefix + "user.created",
                                 envelope("outage", stack.new_org(), 0, "user.created"), key="outage")
            waiting = "hookd_dispatcher_events_waiting_for_redis"
            wait_until(lambda: d1.metrics()[waiting] == 1, 15, what="d1's event waits")
            d3 = stack.dispatcher("d3", REDIS_URL=other_redis.url)
            wait_until(lambda: d3.assigned() > 0 and d1.assigned() < total, 30, what="d3 takes partitions")
            assert d1.metrics()[waiting] == 1, "d1's event went out with Redis still down"
        finally:
            redis_server.thaw()
        wait_until(lambda: d1.metrics()[waiting] == 0, 30, what="d1's event went out")
        d3.proc.signal(signal.SIGTERM)
        assert d3.proc.wait(60) == 0
        wait_until(lambda: d1.assigned() == total, 60, what="d1 takes every partition back")
    finally:
        other_redis.cleanup()
    events = [project_event(org, n, t) for n, t in enumerate(EVENT_TYPES) for org in orgs.values()]
    ids = stack.api.post_events(events)
    want = {(f"/{ev['type']}/{ev['organization_id']}", eid) for eid, ev in zip(ids, events)}
    assert rcv.wait_for(lambda reqs: set(pairs([rcv])) >= want, 30), \
        (sorted({p for p, _ in want - set(pairs([rcv]))}), d1.proc.tail())


def test_deliveries_finished_while_kafka_is_down_are_not_repeated(stack, kafka_broker):
    """The broker stops while the dispatcher delivers what it already fetched: offsets cannot be committed, the
    group session expires and the partitions are lost. When the broker is back they are assigned again and start
    at the last commit: everything delivered during the outage was delivered a second time (612 duplicated pairs
    of 4,000 in the fault scenario; here 1,000 of 1,200 before the fix). The lost partitions' states are
    remembered: what they finished is skipped, and what they still have in flight (a receiver answering in 25 s,
    across the outage and the reassignment) is waited for, not sent again (each of those went out twice before,
    and so did 12 of 15 pairs of a test under valgrind in CI)."""
    rcv = stack.receiver()
    rcv.configure("/o", delay=0.05)
    rcv.configure("/slow", delay=25)
    org, slow_org = stack.new_org(), stack.new_org()
    stack.api.create_webhook(org, rcv.url("/o"), "project.created")
    stack.api.create_webhook(slow_org, rcv.url("/slow"), "project.created")
    d = stack.dispatcher(DELIVERY_TIMEOUT="60s").wait_ready()
    slow_ids = stack.api.post_events([project_event(slow_org, n) for n in range(3)])
    # 1,500: the first intake (MAX_IN_FLIGHT, 1,000) is what the outage catches in memory; the rest is delivered
    # after it (3,000 here took 12 s more of waiting for the same proof)
    ids = stack.api.post_events([project_event(org, n) for n in range(1500)])
    assert rcv.wait_for(lambda reqs: len(reqs) >= 50, 30)
    assert len([r for r in rcv.requests() if r.path == "/slow"]) == 3
    stopped_at = len(rcv.requests())  # stopping the broker takes a few seconds of its own
    kafka_broker.stop()
    try:
        wait_until(lambda: not d.ready(), 30, what="not ready while Kafka is down")
        time.sleep(8)  # past the group session (6 s in these tests): the partitions are lost
        during = len(rcv.requests()) - stopped_at
    finally:
        kafka_broker.start()
    assert during >= 100, f"only {during} delivered while the broker was down: the test proves nothing"
    wanted = set(ids) | set(slow_ids)
    assert rcv.wait_for(lambda reqs: {r.headers["webhook-id"] for r in reqs} >= wanted, 120), d.story()
    wait_until(d.ready, 90, what="ready again")
    time.sleep(3)  # anything consumed again has been delivered again by now
    got = collections.Counter(r.headers["webhook-id"] for r in rcv.requests())
    assert [got[i] for i in slow_ids] == [1, 1, 1], d.story()
    repeated = sum(n - 1 for n in got.values())
    assert repeated == 0, f"{repeated} deliveries repeated ({during} were delivered during the outage)\n{d.story()}"
    assert d.metrics()["hookd_dispatcher_events_finished_before_loss_total"] > 0
    assert any(line["msg"] == "partitions lost" for line in d.proc.log_lines())