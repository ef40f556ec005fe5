"""End-to-end: the consumer groups of the two consumer layouts (CONSUMER_PER_TOPIC), and a dispatcher that starts
in one layout where the other left off (dispatcher/group_handover.h)."""

import collections
import signal
import time

import pytest

from conftest import wait_until
from support.event_types import EVENT_TYPES
from support.services import GROUP_COMMAND
from test_delivery import project_event

TYPES = ["project.created", "user.updated"]
STARTED_ELSEWHERE = "partitions start where another consumer group left them"
NOT_READ = "committed offsets of the consumer groups not read: the partitions wait"
RESUMED = "partitions awaiting the handover resumed"


def deliveries(rcv):
    """Counter of (path, webhook-id) over every request the receiver got."""
    return collections.Counter((r.path, r.headers["webhook-id"]) for r in rcv.requests())


def post_round(stack, org, n):
    events = [project_event(org, i, TYPES[i % len(TYPES)]) for i in range(n)]
    ids = stack.api.post_events(events)
    return {(f"/{ev['type']}", eid) for eid, ev in zip(ids, events)}


def switch_layouts(stack, before, after, **env):
    """A dispatcher of layout `before` delivers a first round of 60 events and stops (SIGTERM: it commits them); a
    second round is written; then a dispatcher of layout `after` (and env) starts. Asserts both rounds are delivered,
    each event once. Returns (receiver, first, second, the second dispatcher)."""
    rcv = stack.receiver()
    org = stack.new_org()
    for t in TYPES:
        stack.api.create_webhook(org, rcv.url(f"/{t}"), t)
    d1 = stack.dispatcher("d1", CONSUMER_PER_TOPIC=before).wait_ready()
    first = post_round(stack, org, 60)
    assert rcv.wait_for(lambda reqs: set(deliveries(rcv)) >= first, 60), d1.story()
    d1.proc.signal(signal.SIGTERM)  # commits what it finished
    assert d1.proc.wait(timeout=30) == 0
    assert not any(line["msg"] == STARTED_ELSEWHERE for line in d1.proc.log_lines())  # nothing to take over yet

    second = post_round(stack, org, 60)  # written while no dispatcher runs
    d2 = stack.dispatcher("d2", CONSUMER_PER_TOPIC=after, **env).wait_ready()
    assert rcv.wait_for(lambda reqs: set(deliveries(rcv)) >= first | second, 60), d2.story()
    time.sleep(1.0)  # a repeat of the first round would be under way by now
    got = deliveries(rcv)
    assert set(got) == first | second
    assert max(got.values()) == 1, f"{sum(v > 1 for v in got.values())} delivered twice\n{d2.story()}"
    return rcv, first, second, d2


@pytest.mark.parametrize("before,after", [("0", "1"), ("1", "0")], ids=["shared-to-per-topic", "per-topic-to-shared"])
def test_a_dispatcher_in_the_other_layout_repeats_nothing(stack, before, after):
    """CONSUMER_PER_TOPIC=0 consumes in KAFKA_GROUP, =1 in a group per event topic (KAFKA_GROUP.<type>); KAFKA_GROUP
    is also the group every release before the per-topic groups used. A dispatcher of the other layout starts each
    partition at the highest offset either group committed: nothing delivered before the switch is delivered again
    (without the handover, every event of the first round came again: its group had committed nothing)."""
    rcv, first, second, d2 = switch_layouts(stack, before, after)
    wait_until(lambda: any(line["msg"] == STARTED_ELSEWHERE for line in d2.proc.log_lines()), 10,
               what="the handover logged")
    handed = [line for line in d2.proc.log_lines() if line["msg"] == STARTED_ELSEWHERE]
    assert {line["topic"][len(stack.api.prefix):] for line in handed} >= set(TYPES), handed
    if after == "1":
        assert all(line["group"] == d2.group_of(line["topic"][len(stack.api.prefix):]) and
                   line["from"] == stack.group for line in handed), handed
    else:
        assert all(line["group"] == stack.group and line["from"].startswith(stack.group + ".") for line in handed), \
            handed


def test_each_event_topic_is_consumed_in_a_group_of_its_own(stack, kafka_broker):
    """The default layout's groups, as Kafka sees them: KAFKA_GROUP.<type> for each event topic, KAFKA_GROUP.retry
    for the retry tiers, and no member in KAFKA_GROUP itself (members of one group that subscribe to different topics
    can send librdkafka 2.0's cooperative-sticky assignor into an endless loop)."""
    d = stack.dispatcher("d1", CONSUMER_PER_TOPIC="1").wait_ready()  # the default layout, under valgrind too
    r = kafka_broker.run_class(GROUP_COMMAND, "--bootstrap-server", kafka_broker.bootstrap, "--list")
    groups = {line.strip() for line in r.stdout.splitlines() if line.strip().startswith(stack.group)}
    assert groups >= {d.group_of(t) for t in EVENT_TYPES}, groups
    assert stack.group not in groups


def test_partitions_wait_while_the_committed_offsets_cannot_be_read(stack):
    """An assignment whose committed offsets Kafka does not answer in time (HANDOVER_TIMEOUT; 0 here, so the read at
    the assignment never waits, as if the coordinator had not answered) does not start its partitions at their own
    group's offset, which after an upgrade from the shared group is none: the topic's earliest, every event of the
    retention again (the build before this check delivered the first round twice here). They stay paused, the read
    is tried again a second later (with at least 3 s to answer), and they start where the shared group left them."""
    _, _, _, d2 = switch_layouts(stack, "0", "1", HANDOVER_TIMEOUT="0")
    lines = d2.proc.log_lines()
    waited = [line for line in lines if line["msg"] == NOT_READ]
    resumed = [line for line in lines if line["msg"] == RESUMED]
    assert waited, d2.story()
    assert {line["topic"][len(stack.api.prefix):] for line in waited} >= set(TYPES), waited
    assert {line["topic"][len(stack.api.prefix):] for line in resumed} >= set(TYPES), resumed
    assert all(line["failed_reads"] >= 1 for line in resumed), resumed
    assert {line["topic"][len(stack.api.prefix):] for line in lines if line["msg"] == STARTED_ELSEWHERE} >= set(TYPES)
    assert d2.metrics()["hookd_dispatcher_partitions_awaiting_handover"] == 0
