"""End-to-end: a Kafka broker that takes clients over TLS with SASL, or with a client certificate, only, as managed
services (Confluent Cloud, MSK, Aiven) and Strimzi listeners do. The broker of this module has a SASL_SSL listener
(certificate from the tests' CA, PLAIN and SCRAM-SHA-256/512 users) and an SSL listener that requires a client
certificate of the tests' CA (tests/support/kafka.sh), besides its PLAINTEXT one, and hookd's services are given
only a secured one, with the README's KAFKA_<PROPERTY> settings: every client they make (producer-api's producer
and topic creation, the dispatcher's consumers, its retry producer and retry-tier consumer) has to authenticate,
and a wrong password or an unverifiable broker certificate is what /readyz says."""

import os

import pytest

from conftest import BIN, Process, Stack, http, wait_until
from support import memcheck
from support.services import KafkaBroker, free_port

USER, PASSWORD = "hookd", "kafka-s3cret"


class SecuredListener:
    """A secured listener of the broker as hookd's services see it: KAFKA_BROKERS and the KAFKA_* settings.
    mechanism: a SASL mechanism (the SASL_SSL listener), or "mTLS" (the SSL listener, with a client certificate)."""

    def __init__(self, ports, ca, mechanism: str, password: str = PASSWORD):  # ca: the tests' TestCA
        self.port = ports["SSL" if mechanism == "mTLS" else "SASL_SSL"]
        self.ca, self.ca_file, self.mechanism, self.password = ca, ca.ca_cert, mechanism, password
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
                       KAFKA_SASL_USERNAME=USER, KAFKA_SASL_PASSWORD=self.password)
        return env


@pytest.fixture(scope="module")
def secured_broker(test_ca):
    """A second broker (the session's stays PLAINTEXT-only) with a SASL_SSL and an SSL (client certificate)
    listener; yields their ports, {"SASL_SSL": port, "SSL": port}."""
    ports = {"SASL_SSL": free_port(), "SSL": free_port()}
    while ports["SSL"] == ports["SASL_SSL"]:
        ports["SSL"] = free_port()
    broker = KafkaBroker(env=dict(BROKER_SASL_SSL_PORT=str(ports["SASL_SSL"]), BROKER_SSL_PORT=str(ports["SSL"]),
                                  BROKER_SASL_USERS=f"{USER}:{PASSWORD}", BROKER_SSL_CLIENT_CA=test_ca.ca_cert))
    pem = broker.dir / "listener.pem"  # the listeners' key (PKCS#8) and certificate, as Kafka's PEM keystore wants
    with open(test_ca.server_key) as key, open(test_ca.server_cert) as cert:
        pem.write_text(key.read() + cert.read())
    broker._env["BROKER_SSL_PEM"] = str(pem)
    broker.start()
    try:
        yield ports
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


def start_producer_api(listener: SecuredListener, redis_server, workdir: str):
    """producer-api that may never be ready (Api waits for /readyz): its Process and URL."""
    port = free_port()
    env = dict(os.environ, REDIS_URL=redis_server.url, KAFKA_BROKERS=listener.bootstrap, TOPIC_PREFIX="sec-bad.",
               LISTEN_ADDR=f"127.0.0.1:{port}", LOG_LEVEL="info", **redis_server.client_env(), **listener.client_env())
    return Process("producer-api-bad-kafka", [str(BIN / "producer-api")], env, workdir), f"http://127.0.0.1:{port}"


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
    api, url = start_producer_api(listener, redis_server, str(tmp_path))
    good = SecuredListener(secured_broker, test_ca, "SCRAM-SHA-512")
    s = Stack(redis_server, good, test_ca, str(tmp_path))  # a working producer-api for the token and a webhook
    try:
        def api_says():
            try:
                return http("GET", url + "/readyz", timeout=3)
            except OSError:
                return None, None
        wait_until(lambda: api_says()[0] == 503 and api_says()[1]["checks"]["kafka"] == expected,
                   memcheck.scaled(30), what=f"producer-api /readyz: {api_says()}\n{api.tail()}")
        assert api_says()[1]["checks"]["redis"] == "ok"
        status, body = http("POST", url + "/api/v1/events",
                            {"type": "user.created", "organization_id": 5, "data": {"id": 1}},
                            token=s.api.service_token, timeout=30)
        assert status == 503 and "message" in body, (status, body)

        d = s.dispatcher(**listener.client_env())

        def dispatcher_says():
            assert d.proc.running, d.story()
            try:
                return http("GET", d.url("/readyz"), timeout=3)
            except OSError:
                return None, None
        try:
            wait_until(lambda: (dispatcher_says()[1] or {}).get("checks", {}).get("kafka") == expected,
                       memcheck.scaled(30), what="dispatcher /readyz")
        except AssertionError as e:
            raise AssertionError(f"{e}: {dispatcher_says()}\n{d.story(20)}") from None
        status, body = http("GET", d.url("/readyz"))
        assert status == 503 and body["status"] == "unavailable", body
        assert d.proc.running
    finally:
        code = api.stop(timeout=30)
        problems = api.memcheck_problems()
        s.close()
    assert code == 0, api.tail()
    assert not problems, problems
