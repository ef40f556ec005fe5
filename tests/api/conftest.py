"""Fixtures for the producer-api black-box tests (tests/api).

  webhooks_api        session: bin/producer-api on the real redis_server, KAFKA_BROKERS on a closed port
                      (webhooks-only tests never wait for Kafka; /readyz stays 503)
  webhooks_api_private session: the same with ALLOW_PRIVATE_TARGETS=1
  producer_api        session: bin/producer-api on redis_server and the real kafka_broker, /readyz 200
                      (only the events tests use it, so only they start Kafka)
  new_org             a function returning an organization id never used before in this session

Every instance is stopped with SIGTERM at session end (exit 0 asserted by ProducerApi.stop).
"""

import itertools
import random

import pytest

from support.producer_api import ProducerApi, closed_port

_ORGS = itertools.count(random.randint(1_000_000, 900_000_000) * 10)


def next_org() -> int:
    return next(_ORGS)


@pytest.fixture(scope="session")
def new_org():
    return next_org


def _run(api: ProducerApi):
    try:
        yield api
    finally:
        try:
            if api.running:
                api.stop()
        finally:
            api.cleanup()


@pytest.fixture(scope="session")
def webhooks_api(redis_server):
    yield from _run(ProducerApi(redis_server.url, f"127.0.0.1:{closed_port()}", allow_private="0"))


@pytest.fixture(scope="session")
def webhooks_api_private(redis_server):
    yield from _run(ProducerApi(redis_server.url, f"127.0.0.1:{closed_port()}", allow_private="1"))


@pytest.fixture(scope="session")
def producer_api(redis_server, kafka_broker):
    api = ProducerApi(redis_server.url, kafka_broker.bootstrap, allow_private="0")
    try:
        api.wait_ready(timeout=90)
    except BaseException:
        api.cleanup()
        raise
    yield from _run(api)
