"""Shared pytest fixtures for tests/api and tests/e2e (owned by the test infrastructure).

Session-scoped, real services on free loopback ports, temporary dirs under /tmp:
  redis_server  -> support.services.RedisServer (started on first use, stopped at session end)
  kafka_broker  -> support.services.KafkaBroker (single-node KRaft Kafka 3.9.1; started lazily, only
                   when some test requests it; stopped at session end)
Set HOOKD_KEEP_TMP=1 to keep the service directories (logs: redis.log, kafka.log, kafka.out).

Run with Debian's python: /usr/bin/python3 -m pytest -q tests/api
"""

import os
import sys

import pytest

# Make tests/ importable: `from support.services import ...`.
_TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

from support.services import KafkaBroker, RedisServer  # noqa: E402


def _keep_tmp() -> bool:
    return os.environ.get("HOOKD_KEEP_TMP", "") not in ("", "0")


@pytest.fixture(scope="session")
def redis_server():
    server = RedisServer()
    try:
        server.start()
    except BaseException:
        if not _keep_tmp():
            server.cleanup()
        raise
    try:
        yield server
    finally:
        if _keep_tmp():
            server.stop()
            sys.stderr.write(f"\nredis dir kept: {server.dir}\n")
        else:
            server.cleanup()


@pytest.fixture(scope="session")
def kafka_broker():
    broker = KafkaBroker()
    try:
        broker.start()
    except BaseException:
        if not _keep_tmp():
            broker.cleanup()
        raise
    try:
        yield broker
    finally:
        if _keep_tmp():
            broker.stop()
            sys.stderr.write(f"\nkafka dir kept: {broker.dir}\n")
        else:
            broker.cleanup()
