"""Kafka fixtures: one Tansu broker per session behind a TCP proxy, a topic and group per test.

Clients connect through the proxy (the broker advertises the proxy's port), so a test can cut
the network with `kafka.outage()` without restarting the broker (memory storage would lose every
topic). Topic names and group ids are unique per test: Tansu wedges a group whose leader leaves
while a rebalance is pending, so groups are never shared.

A test using `kafka` (directly or through the fixtures built on it) is marked `kafka` by
tests/conftest.py, so `make test-fast` leaves it out; a new fixture that reaches the broker
without `kafka` must be added to KAFKA_FIXTURES there (tests/test_tiers.py fails otherwise).
"""

from __future__ import annotations

import importlib
import json
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from devtools.tansu import BrokerError, TansuBroker, TcpProxy, free_port

# kafka-python 3.0.12 loads its protocol schemas with importlib.resources.open_text, deprecated
# in 3.11; the warning is attributed to importlib (not kafka.*), so pytest.ini's kafka filter
# misses it and `filterwarnings = error` would fail collection. Import it once, silenced.
# import_module binds no name here: `kafka` is the broker fixture below.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    importlib.import_module("kafka.consumer")
    importlib.import_module("kafka.producer")


@dataclass
class KafkaTestBroker:
    """The session broker and the proxy every client goes through."""

    broker: TansuBroker
    proxy: TcpProxy

    @property
    def bootstrap(self) -> str:
        """Address for clients (the proxy)."""
        return self.proxy.address

    def create_topic(self, partitions: int = 3) -> str:
        """Creates a uniquely named topic and returns its name."""
        name = f"t-{uuid.uuid4().hex[:10]}"
        self.broker.create_topics([name], partitions=partitions)
        return name

    @contextmanager
    def outage(self) -> Iterator[None]:
        """Broker unreachable inside the block (proxy down); reachable again afterwards."""
        self.proxy.stop()
        try:
            yield
        finally:
            self.proxy.start()


@pytest.fixture(scope="session")
def kafka() -> Iterator[KafkaTestBroker]:
    """A Tansu broker on a free loopback port for the whole session (skips if Tansu is missing)."""
    proxy_port = free_port()
    try:
        broker = TansuBroker(advertised_port=proxy_port).start()
    except BrokerError as exc:
        pytest.skip(f"Tansu broker unavailable: {exc}")
    proxy = TcpProxy("127.0.0.1", broker.port, listen_port=proxy_port).start()
    try:
        yield KafkaTestBroker(broker, proxy)
    finally:
        proxy.stop()
        broker.stop()


@pytest.fixture
def kafka_topic(kafka: KafkaTestBroker) -> str:
    """A fresh 3-partition topic for this test."""
    return kafka.create_topic(partitions=3)


@pytest.fixture
def kafka_group() -> str:
    """A group id used by this test only."""
    return f"g-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def kafka_settings(make_settings, kafka: KafkaTestBroker, kafka_topic: str, kafka_group: str) -> Callable:
    """Settings for a consumer on this test's topic and group (`kafka_settings(**overrides)`)."""

    def build(**overrides: object):
        values: dict[str, object] = dict(
            kafka_enabled=True,
            kafka_bootstrap_servers=kafka.bootstrap,
            kafka_topics=kafka_topic,
            kafka_group_id=kafka_group,
            kafka_session_timeout_ms=6000,
            kafka_heartbeat_interval_ms=1000,
            kafka_poll_timeout_ms=100,
            kafka_stop_timeout_seconds=5,
            kafka_request_timeout_ms=5000,
            consumer_backoff_base_seconds=0.2,
            consumer_backoff_cap_seconds=1.0,
        )
        values.update(overrides)
        return make_settings(**values)

    return build


class Producer:
    """A kafka-python producer with helpers for JSON events and raw bytes."""

    def __init__(self, bootstrap: str) -> None:
        from kafka import KafkaProducer

        self.client = KafkaProducer(bootstrap_servers=[bootstrap], acks="all", linger_ms=5, max_request_size=4_000_000)

    def send(self, topic: str, values: Sequence[bytes | dict[str, Any]], *, key: bytes | None = None) -> None:
        """Sends every value (dicts as JSON; the event id is the key unless given) and flushes."""
        for value in values:
            if isinstance(value, dict):
                message_key = key if key is not None else str(value.get("id", "")).encode() or None
                value = json.dumps(value).encode()
            else:
                message_key = key
            self.client.send(topic, value=value, key=message_key)
        self.client.flush(timeout=30)

    def close(self) -> None:
        """Flushes and closes the client."""
        self.client.close(timeout=5)


@pytest.fixture
def kafka_producer(kafka: KafkaTestBroker) -> Iterator[Producer]:
    """A producer for this test (closed afterwards)."""
    producer = Producer(kafka.bootstrap)
    try:
        yield producer
    finally:
        producer.close()


@pytest.fixture
def open_worker():
    """Builds ConsumerWorkers opened in the test thread (driven by poll_once); closed afterwards."""
    from servicescheduler.consumers.running.worker import ConsumerWorker
    from servicescheduler.storage.db import Database
    from servicescheduler.storage.migrate import upgrade

    opened: list[tuple[ConsumerWorker, Database]] = []

    def build(settings, **kwargs) -> ConsumerWorker:
        database = Database(settings)
        upgrade(database.engine)
        worker = ConsumerWorker(settings=settings, database=database, **kwargs)
        worker.open()
        opened.append((worker, database))
        return worker

    yield build
    for worker, database in opened:
        worker.close()
        database.dispose()
