"""Smoke tests for the real-service fixtures of tests/conftest.py (test infrastructure)."""

import uuid

from support.services import free_port, port_open


def test_free_port_is_bindable():
    p = free_port()
    assert 1024 <= p <= 65535
    assert not port_open(p)


def test_redis_ping_and_keys(redis_server):
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    assert redis_server.cli("PING") == "PONG"
    assert redis_server.cli("SET", "hookd:smoke", "1") == "OK"
    assert redis_server.cli("INCR", "hookd:smoke") == "2"
    redis_server.cli("DEL", "hookd:smoke")


def test_redis_restart_same_port(redis_server):
    port = redis_server.port
    redis_server.cli("SET", "hookd:smoke:restart", "x")
    redis_server.restart()
    assert redis_server.port == port
    assert redis_server.cli("PING") == "PONG"
    assert redis_server.cli("EXISTS", "hookd:smoke:restart") == "0"  # no persistence


def test_kafka_topic_create_list_produce_consume(kafka_broker):
    topic = f"webhooks.smoke.{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, partitions=2)
    assert topic in kafka_broker.topics()
    kafka_broker.produce(topic, '{"id":"e1"}', key="7", partition=1)
    kafka_broker.produce(topic, "line1\nline2", partition=0)
    msgs = sorted(kafka_broker.consume(topic, 2, timeout=20), key=lambda m: m[2])
    assert msgs == [(None, "line1\nline2", 0, 0), ("7", '{"id":"e1"}', 1, 0)]


def test_kafka_stop_start_keeps_data(kafka_broker):
    topic = f"webhooks.smoke.restart.{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic)
    kafka_broker.produce(topic, "before", key="1")
    bootstrap = kafka_broker.bootstrap
    kafka_broker.stop()
    assert not kafka_broker.running
    kafka_broker.start()
    assert kafka_broker.bootstrap == bootstrap
    assert topic in kafka_broker.topics()
    assert kafka_broker.consume(topic, 1, timeout=20) == [("1", "before", 0, 0)]
