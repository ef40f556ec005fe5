"""End-to-end: a Kafka broker that takes clients over TLS with SASL, or with a client certificate, only, as managed
services (Confluent Cloud, MSK, Aiven) and Strimzi listeners do. The broker of this module has a SASL_SSL listener
(certificate from the tests' CA, PLAIN and SCRAM-SHA-256/512 users) and an SSL listener that requires a client
certificate of the tests' CA (tests/support/kafka.sh), besides its PLAINTEXT one, and hookd's services are given
only a secured one, with the README's KAFKA_<PROPERTY> settings: every client they make (producer-api's producer
and topic creation, the dispatcher's consumers, its retry producer and retry-tier consumer) has to authenticate,
and a wrong password or an unverifiable broker certificate is what /readyz says. The broker runs Kafka's ACL
authorizer: the tests' users above are super users, and a user held to ACLs shows that the ACLs the README lists are
enough, and that a missing one is named, not silent."""

import os
import re
import time
from typing import List

import pytest

from conftest import Api, Stack, http, new_group, new_topic_prefix, wait_until
from support import memcheck
from support.services import KafkaBroker, free_port

USER, PASSWORD = "hookd", "kafka-s3cret"
# A user the broker's authorizer holds to its ACLs (USER and the client certificate's are super users)
ACL_USER, ACL_PASSWORD = "hookd-acl", "acl-s3cret"
# Others, for the tests that need a user never granted Write on any topic (ACLs outlive a test): one each
WRITELESS_USER = "hookd-writeless"
WRITELESS_API_USER = "hookd-writeless-api"


class SecuredListener:
    """A secured listener of the broker as hookd's services see it: KAFKA_BROKERS and the KAFKA_* settings.
    mechanism: a SASL mechanism (the SASL_SSL listener), or "mTLS" (the SSL listener, with a client certificate)."""

    def __init__(self, broker, ca, mechanism: str, password: str = PASSWORD, user: str = USER):
        # broker: the secured_broker fixture's; ca: the tests' TestCA
        self.port = broker.ports["SSL" if mechanism == "mTLS" else "SASL_SSL"]
        self.ca, self.ca_file, self.mechanism, self.password, self.user = ca, ca.ca_cert, mechanism, password, user
        self.client_certificate = mechanism == "mTLS"

    @property
    def bootstrap(self) -> str:
        return f"localhost:{self.port}"  # the name the certificate carries (DNS:localhost, IP:127.0.0.1)

    def client_env(self):
        env = dict(KAFKA_SSL_CA_LOCATION=self.ca_file)
        if self.mechanism == "mTLS":
            env.update(KAFKA_SECURITY_PROTOCOL="SSL")
            if self.client_certificate:
                env.update(KAFKA_SSL_CERTIFICATE_LOCATION=self.ca.client_cert(),
                           KAFKA_SSL_KEY_LOCATION=self.ca.client_key())
        else:
            env.update(KAFKA_SECURITY_PROTOCOL="SASL_SSL", KAFKA_SASL_MECHANISM=self.mechanism,
                       KAFKA_SASL_USERNAME=self.user, KAFKA_SASL_PASSWORD=self.password)
        return env


@pytest.fixture(scope="module")
def secured_broker(test_ca):
    """A second broker (the session's stays PLAINTEXT-only) with a SASL_SSL and an SSL (client certificate)
    listener and Kafka's ACL authorizer; yields the KafkaBroker, with its secured listeners' ports in .ports
    ({"SASL_SSL": port, "SSL": port}). USER and the client certificate are super users; ACL_USER has what ACLs
    a test gives it (acl_add: on its PLAINTEXT listener, whose anonymous principal is a super user too)."""
    ports = {"SASL_SSL": free_port(), "SSL": free_port()}
    while ports["SSL"] == ports["SASL_SSL"]:
        ports["SSL"] = free_port()
    pem = os.path.join(test_ca.dir, "kafka-listener.pem")  # key (PKCS#8) and certificate: Kafka's PEM keystore
    with open(test_ca.server_key) as key, open(test_ca.server_cert) as cert, open(pem, "w") as out:
        out.write(key.read() + cert.read())
    broker = KafkaBroker(env=dict(BROKER_SASL_SSL_PORT=str(ports["SASL_SSL"]), BROKER_SSL_PORT=str(ports["SSL"]),
                                  BROKER_SSL_PEM=pem, BROKER_SASL_USERS=f"{USER}:{PASSWORD} {ACL_USER}:{ACL_PASSWORD} "
                                                    f"{WRITELESS_USER}:{ACL_PASSWORD} {WRITELESS_API_USER}:{ACL_PASSWORD}",
                                  BROKER_SUPER_USERS=f"User:{USER};User:CN=hookd test client",
                                  BROKER_SSL_CLIENT_CA=test_ca.ca_cert))
    broker.start()
    try:
        broker.ports = ports
        yield broker
    finally:
        broker.cleanup()


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "PLAIN", "mTLS"])
def test_events_are_delivered_and_retried_through_a_broker_that_requires_tls_and_sasl(
        secured_broker, redis_server, test_ca, tmp_path, mechanism):
    """SCRAM-SHA-512 (Strimzi, MSK) and PLAIN over TLS (Confluent Cloud), and TLS with a client certificate
    (Strimzi's "tls" users): producer-api creates its topics and writes an event, the dispatcher's consumer reads
    it, the receiver's 500 sends it through the retry producer to a retry tier, whose consumer delivers it again,
    all on the secured listener only."""
    s = Stack(redis_server, SecuredListener(secured_broker, test_ca, mechanism), test_ca, str(tmp_path))
    try:
        rcv = s.receiver()
        rcv.configure("/secured", status=500)
        org = s.new_org()
        s.api.create_webhook(org, rcv.url("/secured"), "user.created")
        d = s.dispatcher(RETRY_SCHEDULE="1s").wait_ready()
        status, body = http("GET", d.url("/readyz"))
        assert (status, body["checks"]["kafka"]) == (200, "ok"), body
        [event_id] = s.api.post_events([{"type": "user.created", "organization_id": org, "data": {"id": 41}}])
        assert rcv.wait_for(lambda reqs: len(reqs) >= 1, memcheck.scaled(30)), d.story()
        rcv.configure("/secured", status=204)
        assert rcv.wait_for(lambda reqs: len(reqs) >= 2, memcheck.scaled(30)), d.story()
        first, second = rcv.requests("/secured")[:2]
        assert first.body == second.body
        assert first.headers["webhook-id"] == second.headers["webhook-id"] == event_id
        wait_until(lambda: len(d.attempts()) >= 2, memcheck.scaled(10), what="the second attempt logged")
        attempts = d.attempts()
        assert [(a["attempt"], a["status"]) for a in attempts] == [(1, 500), (2, 204)], attempts
        assert d.metrics().get("hookd_dispatcher_assigned_retry_partitions", 0) > 0
    finally:
        s.close()


def readyz_naming(url: str, proc, cause: str):
    """Waits until GET url/readyz gives cause as Kafka's check and Redis's is "ok", while proc keeps running; returns
    (status, body). Redis's too: "unreachable" is also what a service says of Kafka before its first look, and a
    dispatcher asked that early had not looked at Redis yet either (seen once in CI, 2026-12-07)."""
    def readyz():
        try:
            return http("GET", url + "/readyz", timeout=3)
        except OSError:  # not listening yet
            return None, {}

    def answer():
        assert proc.running, proc.tail()
        status, body = readyz()
        checks = body.get("checks", {})
        return (status, body) if checks.get("kafka") == cause and checks.get("redis") == "ok" else None
    try:
        return wait_until(answer, memcheck.scaled(30), what=f"{proc.name} /readyz naming {cause!r}")
    except AssertionError as e:
        raise AssertionError(f"{e}: {readyz()}\n{proc.tail(20)}") from None


@pytest.mark.parametrize("wrong", ["password", "certificate", "client certificate"])
def test_a_wrong_kafka_password_or_an_unverifiable_broker_is_what_readyz_says(
        secured_broker, redis_server, test_ca, tmp_path, wrong):
    """Both services stay up and not ready, and /readyz names the cause instead of "unreachable": "authentication
    failed" for a wrong SASL password, "TLS handshake failed" for a broker certificate KAFKA_SSL_CA_LOCATION does
    not verify (here: the system CAs, which do not know the tests' CA). Without the client certificate a broker
    requires, "unreachable": under TLS 1.3 the broker refuses it after the handshake and librdkafka 2.0 reports
    a dropped connection (the alert, when it read it, is in the log). An event is refused with 503, not taken."""
    listener = SecuredListener(secured_broker, test_ca, "mTLS" if wrong == "client certificate" else "SCRAM-SHA-512")
    if wrong == "password":
        listener.password = "not-" + PASSWORD
        expected = "authentication failed"
    elif wrong == "certificate":
        listener.ca_file = "/etc/ssl/certs/ca-certificates.crt"
        expected = "TLS handshake failed"
    else:
        listener.client_certificate = False
        expected = "unreachable"
    api = Api(redis_server, listener, str(tmp_path), wait_ready=False)
    s = Stack(redis_server, SecuredListener(secured_broker, test_ca, "SCRAM-SHA-512"), test_ca, str(tmp_path))
    try:
        status, body = readyz_naming(api.url, api.proc, expected)
        assert status == 503 and body["status"] == "unavailable" and body["checks"]["redis"] == "ok", body
        status, body = http("POST", api.url + "/api/v1/events",
                            {"type": "user.created", "organization_id": 5, "data": {"id": 1}},
                            token=api.service_token, timeout=30)
        assert status == 503 and "message" in body, (status, body)

        d = s.dispatcher(**listener.client_env())
        status, body = readyz_naming(d.url(""), d.proc, expected)
        assert status == 503 and body["status"] == "unavailable" and body["checks"]["redis"] == "ok", body
        assert d.proc.running
    finally:
        code = api.proc.stop(timeout=30)
        problems = api.proc.memcheck_problems()
        s.close()
    assert code == 0, api.proc.tail()
    assert not problems, problems


ACL_COMMAND = "kafka.admin.AclCommand"


def grant(broker, resource: str, names, *operations: str, pattern: str = "prefixed", user: str = ACL_USER) -> None:
    """Allows user operations on the topics or groups (resource "topic" or "group") named names (a name or a
    list), or whose names begin with them (pattern "prefixed"), as kafka-acls.sh --add does."""
    args = ["--bootstrap-server", broker.bootstrap, "--add", "--allow-principal", f"User:{user}",
            "--resource-pattern-type", pattern]
    for name in [names] if isinstance(names, str) else names:
        args += [f"--{resource}", name]
    for op in operations:
        args += ["--operation", op]
    broker.run_class(ACL_COMMAND, *args)


EVENT_TYPES = ["project.created", "project.updated", "time.entry.created", "time.entry.updated", "user.created",
               "user.updated", "assignment.created", "assignment.updated"]


def acl_listener(broker, ca, user: str = ACL_USER) -> SecuredListener:
    """The SASL_SSL listener as user (SCRAM-SHA-512): what hookd may do there is what the test granted."""
    return SecuredListener(broker, ca, "SCRAM-SHA-512", password=ACL_PASSWORD, user=user)


def log_messages(proc) -> List[str]:
    return [line.get("msg", "") for line in proc.log_lines()]


def deliver_and_retry(s: Stack, d, path: str) -> None:
    """An event whose first attempt the receiver answers 500 and its retry 204: it goes through producer-api's
    producer, an event topic's consumer group, the retry producer and the retry tier's consumer group."""
    rcv = s.receiver()
    rcv.configure(path, status=500)
    org = s.new_org()
    s.api.create_webhook(org, rcv.url(path), "user.created")
    d.wait_ready()
    [event_id] = s.api.post_events([{"type": "user.created", "organization_id": org, "data": {"id": 7}}])
    assert rcv.wait_for(lambda reqs: len(reqs) >= 1, memcheck.scaled(30)), d.story()
    rcv.configure(path, status=204)
    assert rcv.wait_for(lambda reqs: len(reqs) >= 2, memcheck.scaled(30)), d.story()
    assert [r.headers["webhook-id"] for r in rcv.requests(path)] == [event_id, event_id]


@pytest.mark.parametrize("grants, layout", [("prefixed", "per topic"), ("literal groups, no Create", "per topic"),
                                            ("literal groups, no Create", "one consumer")])
def test_the_acls_the_readme_lists_are_enough(secured_broker, redis_server, test_ca, tmp_path, grants, layout):
    """hookd's user with only the ACLs the README lists (Kafka's authorizer refuses everything else): producer-api
    writes an event, the dispatcher delivers it, retries it through a tier. "prefixed": Describe, Read, Write and
    Create on the topics whose names begin with TOPIC_PREFIX, Read on the groups beginning with KAFKA_GROUP.
    "literal groups, no Create", a stricter operator: the topics made by the operator (hookd may not create them)
    and Read on each group the dispatcher joins, by name: the eight "KAFKA_GROUP.<type>" (CONSUMER_PER_TOPIC=1) or
    KAFKA_GROUP (=0), and "KAFKA_GROUP.retry". Not on the other layout's groups, whose offsets the handover reads at
    every assignment (group_handover.h): the broker refuses the read, which counts as no offsets."""
    prefix, group = new_topic_prefix(), new_group()
    per_topic = layout == "per topic"
    topic_groups = [f"{group}.{t}" for t in EVENT_TYPES]
    if grants == "prefixed":
        grant(secured_broker, "topic", prefix, "Describe", "Read", "Write", "Create")
        grant(secured_broker, "group", group, "Read")
    else:
        # the operator's topics: producer-api run as a super user makes the event topics, TopicCommand the rest
        Api(redis_server, SecuredListener(secured_broker, test_ca, "SCRAM-SHA-512"), str(tmp_path),
            prefix=prefix).stop()
        for name in ("retry.1s", "dead"):
            secured_broker.create_topic(prefix + name, partitions=2)
        grant(secured_broker, "topic", prefix, "Describe", "Read", "Write")
        grant(secured_broker, "group", (topic_groups if per_topic else [group]) + [group + ".retry"], "Read",
              pattern="literal")
    s = Stack(redis_server, acl_listener(secured_broker, test_ca), test_ca, str(tmp_path), prefix=prefix, group=group)
    try:
        # under valgrind the readers' TLS and SCRAM handshakes take several times HANDOVER_TIMEOUT's 3 s
        d = s.dispatcher(RETRY_SCHEDULE="1s", CONSUMER_PER_TOPIC="1" if per_topic else "0",
                         HANDOVER_TIMEOUT=f"{int(memcheck.scaled(3))}s")
        deliver_and_retry(s, d, "/acl")
        wait_until(lambda: len(d.attempts()) >= 2, memcheck.scaled(10), what="the second attempt logged")
        assert [(a["attempt"], a["status"]) for a in d.attempts()] == [(1, 500), (2, 204)], d.story()
        api_log, dispatcher_log = log_messages(s.api.proc), log_messages(d.proc)
        assert "creating topic failed" not in api_log, s.api.proc.tail()
        assert not [m for m in dispatcher_log if m.startswith("creating")], d.story()
        assert d.metrics().get("hookd_dispatcher_partitions_awaiting_handover", 0) == 0, d.story()
        if grants == "prefixed":
            assert "topic created" in dispatcher_log
            assert not [m for m in dispatcher_log if "not authorized" in m], d.story()
        else:
            # producer-api is ready (Stack waited for it): its eight topics count as there (its log is at warn)
            assert dispatcher_log.count("topic exists (not created: no Create ACL)") == 2, d.story()
            refused_lines = [line for line in d.proc.log_lines()
                             if line.get("msg") == "committed offsets of the other consumer layout's group not "
                                                   "authorized: not compared"]
            refused = {line["other"] for line in refused_lines}
            # the line says what it risks: a layout change without Read on the other group starts from its own
            assert all("CONSUMER_PER_TOPIC" in line["risk"] for line in refused_lines), refused_lines
            # the one consumer reads the eight groups one after another and names the first it was refused
            assert refused == ({group} if per_topic else {topic_groups[0]}), d.story()
    finally:
        s.close()


@pytest.mark.parametrize("missing", ["group", "topic"])
def test_a_missing_acl_is_named_and_nothing_is_lost_once_granted(
        secured_broker, redis_server, test_ca, tmp_path, missing):
    """The dispatcher's user lacks Read on its consumer groups ("group": it can join none), or on the event topics
    ("topic": with Describe alone it joins and is assigned their partitions, and every fetch is refused). It keeps
    running, not ready, and /readyz and an error line name the refusal. Once the ACL is granted, the event written
    meanwhile is delivered and the dispatcher is ready."""
    prefix, group = new_topic_prefix(), new_group()
    grant(secured_broker, "topic", prefix, *(["Describe", "Write", "Create"] if missing == "topic" else
                                             ["Describe", "Read", "Write", "Create"]))
    if missing == "topic":
        grant(secured_broker, "group", group, "Read")
    # producer-api as the super user: only the dispatcher's ACLs are under test
    s = Stack(redis_server, SecuredListener(secured_broker, test_ca, "SCRAM-SHA-512"), test_ca, str(tmp_path),
              prefix=prefix, group=group)
    try:
        rcv = s.receiver()
        org = s.new_org()
        s.api.create_webhook(org, rcv.url("/late"), "user.created")
        [event_id] = s.api.post_events([{"type": "user.created", "organization_id": org, "data": {"id": 9}}])
        d = s.dispatcher(**acl_listener(secured_broker, test_ca).client_env())
        cause, line = (("consumer group not authorized", "consumer group not authorized: the broker's ACLs must allow "
                                                          "Read on it") if missing == "group" else
                       ("topic not authorized", "topic not authorized: the broker's ACLs must allow Describe and "
                                                "Read on it"))
        status, body = readyz_naming(d.url(""), d.proc, cause)
        assert status == 503 and body["status"] == "unavailable", body
        # the refusal of the event's own group or topic is named too (/readyz names the first one it met)
        name_key, name = ("group", f"{group}.user.created") if missing == "group" else ("topic", prefix + "user.created")
        wait_until(lambda: name in {ln.get(name_key) for ln in d.proc.log_lines() if ln.get("msg") == line},
                   memcheck.scaled(15), what=f"an error line naming {name}\n{d.story()}")
        assert rcv.requests("/late") == []
        grant(secured_broker, "topic" if missing == "topic" else "group", prefix if missing == "topic" else group,
              "Read")
        assert rcv.wait_for(lambda reqs: len(reqs) >= 1, memcheck.scaled(60)), d.story()
        assert [r.headers["webhook-id"] for r in rcv.requests("/late")] == [event_id]
        d.wait_ready(timeout=30)
    finally:
        s.close()


@pytest.mark.parametrize("write", ["none", "dead-letter topic only"])
def test_retry_records_the_broker_refuses_are_held_and_written_once_granted(
        secured_broker, redis_server, test_ca, tmp_path, write):
    """The dispatcher's user may read its topics but not write the retry tiers. A failed delivery's retry record is
    refused: it is held, not lost (its event's offset waits for it), counted in
    hookd_dispatcher_retry_write_failures_total and logged once per 10 s with the count, not a line per record per
    200 ms tick. Once Write is granted, the record is written and the retry delivered.
    "dead-letter topic only": each write is refused (TOPIC_AUTHORIZATION_FAILED). "none", Write on no topic at
    all: the broker refuses the idempotent retry producer its producer id (IdempotentWrite comes with Write on any
    topic), a fatal error after which librdkafka takes no write, ever (the retry was held until a restart): the
    producer is replaced by a new one, after 1 s, 2 s, 4 s ... while it keeps failing."""
    prefix, group = new_topic_prefix(), new_group()
    user = WRITELESS_USER if write == "none" else ACL_USER
    grant(secured_broker, "topic", prefix, "Describe", "Read", "Create", user=user)
    grant(secured_broker, "group", group, "Read", user=user)
    if write != "none":
        grant(secured_broker, "topic", prefix + "dead", "Write", pattern="literal", user=user)
    s = Stack(redis_server, SecuredListener(secured_broker, test_ca, "SCRAM-SHA-512"), test_ca, str(tmp_path),
              prefix=prefix, group=group)
    try:
        rcv = s.receiver()
        rcv.configure("/held", status=500)
        org = s.new_org()
        s.api.create_webhook(org, rcv.url("/held"), "user.created")
        d = s.dispatcher(RETRY_SCHEDULE="1s", **acl_listener(secured_broker, test_ca, user).client_env()).wait_ready()
        [event_id] = s.api.post_events([{"type": "user.created", "organization_id": org, "data": {"id": 3}}])
        assert rcv.wait_for(lambda reqs: len(reqs) >= 1, memcheck.scaled(30)), d.story()
        rcv.configure("/held", status=204)
        wait_until(lambda: d.metrics().get("hookd_dispatcher_retry_write_failures_total", 0) >= 10,
                   memcheck.scaled(20), what="ten refused writes of the retry record")
        lines = [ln for ln in d.proc.log_lines() if ln.get("msg") == "retry record writes failed; trying again"]
        assert len(lines) == 1 and lines[0]["failures"] == 1 and lines[0]["topic"] == prefix + "retry.1s", lines
        replaced = [ln for ln in d.proc.log_lines()
                    if ln.get("msg") == "retry producer failed for good: replaced by a new one"]
        if write == "none":
            assert lines[0]["error"] == "Local: Fatal error", lines
            assert replaced and "authorization" in replaced[0]["reason"].lower(), d.story()
        else:
            assert lines[0]["error"] == "Broker: Topic authorization failed" and not replaced, d.story()
        assert len(rcv.requests("/held")) == 1  # the retry waits for its record
        grant(secured_broker, "topic", prefix, "Write", user=user)
        assert rcv.wait_for(lambda reqs: len(reqs) >= 2, memcheck.scaled(60)), d.story()
        assert [r.headers["webhook-id"] for r in rcv.requests("/held")] == [event_id, event_id]
        wait_until(lambda: "retry record writes succeed again" in log_messages(d.proc), memcheck.scaled(10),
                   what="the recovery logged")
        lines = [ln for ln in d.proc.log_lines() if ln.get("msg") == "retry record writes failed; trying again"]
        # the first failure's line, one per 10 s since, and the rest counted when a write succeeded
        assert 2 <= len(lines) <= 10 and sum(ln["failures"] for ln in lines) == \
            d.metrics()["hookd_dispatcher_retry_write_failures_total"], lines
        # every replacement is counted (none after the write that succeeded)
        replaced = [ln for ln in d.proc.log_lines()
                    if ln.get("msg") == "retry producer failed for good: replaced by a new one"]
        assert d.metrics()["hookd_dispatcher_retry_producer_replacements_total"] == len(replaced), d.story()
    finally:
        s.close()


def test_a_producer_api_whose_kafka_producer_failed_for_good_gets_a_new_one(
        secured_broker, redis_server, test_ca, tmp_path):
    """producer-api's user may create and describe its topics but write none: the broker refuses its idempotent
    producer a producer id (IdempotentWrite comes with Write on any topic), a fatal error after which librdkafka
    takes no write, ever. Every event was answered 503 until a restart, even once Write was granted. The producer
    is now replaced by a new one (at once, then after 1 s, 2 s, 4 s ... while it keeps failing): events are 503
    while the ACL is missing, and once it is granted they are 202 and delivered, with no restart."""
    prefix = new_topic_prefix()
    user = WRITELESS_API_USER
    grant(secured_broker, "topic", prefix, "Describe", "Create", user=user)
    s = Stack(redis_server, acl_listener(secured_broker, test_ca, user), test_ca, str(tmp_path), prefix=prefix)
    try:
        rcv = s.receiver()
        org = s.new_org()
        s.api.create_webhook(org, rcv.url("/fresh"), "user.created")
        # the dispatcher on the broker's PLAINTEXT listener (a super user there): only producer-api's ACLs are under
        # test, and a SASL_SSL dispatcher is slow under valgrind
        d = s.dispatcher(KAFKA_BROKERS=secured_broker.bootstrap, KAFKA_SECURITY_PROTOCOL=None, KAFKA_SASL_MECHANISM=None,
                         KAFKA_SASL_USERNAME=None, KAFKA_SASL_PASSWORD=None, KAFKA_SSL_CA_LOCATION=None).wait_ready()
        replaced_line = "kafka producer failed for good: replaced by a new one"
        wait_until(lambda: replaced_line in log_messages(s.api.proc), memcheck.scaled(20),
                   what=f"the producer replaced\n{s.api.proc.tail()}")
        replaced = [ln for ln in s.api.proc.log_lines() if ln.get("msg") == replaced_line]
        assert "authorization" in replaced[0]["reason"].lower(), replaced

        def post(n: int):
            return http("POST", s.api.url + "/api/v1/events",
                        {"type": "user.created", "organization_id": org, "data": {"id": n}}, token=s.api.service_token)

        status, body = post(0)
        assert status == 503 and body.get("message"), (status, body)
        granted_at = time.monotonic()
        grant(secured_broker, "topic", prefix, "Write", user=user)
        accepted = []

        def accepted_once() -> bool:
            st, b = post(len(accepted) + 1)
            if st == 202:
                accepted.append(b["id"])
                return True
            assert st == 503, (st, b)
            return False
        wait_until(accepted_once, memcheck.scaled(90), interval=1.0,
                   what=f"an event accepted after the grant\n{s.api.proc.tail()}")
        took = time.monotonic() - granted_at
        assert rcv.wait_for(lambda reqs: len(reqs) >= 1, memcheck.scaled(30)), d.story()
        time.sleep(1)
        # only the accepted event: the refused ones were never written
        assert [r.headers["webhook-id"] for r in rcv.requests("/fresh")] == accepted
        # replacements spaced 1 s, 2 s, 4 s ...: a handful over the test, not one per 100 ms tick
        replaced = [ln for ln in s.api.proc.log_lines() if ln.get("msg") == replaced_line]
        assert 1 <= len(replaced) <= 8, (len(replaced), took)
        assert [ln["next_in_ms"] for ln in replaced[:3]] == [1000, 2000, 4000][:len(replaced[:3])], replaced
        # and counted (none after the write that succeeded)
        status, text = http("GET", s.api.url + "/metrics")
        counted = re.search(r"^hookd_kafka_producer_replacements_total (\S+)$", text, re.M)
        assert counted and float(counted.group(1)) == len(replaced), text[-2000:]
    finally:
        s.close()
