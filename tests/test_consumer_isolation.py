"""KAFKA_ISOLATION_LEVEL: both clients are built read_committed unless told otherwise.

What is proven here is the configuration of the clients as built: the dev broker (Tansu) gives
no difference to observe (measured: an aborted transaction's records are consumed with neither
level), so a test producing an aborted transaction cannot tell the two levels apart. Against
real Kafka, which returns aborted records with the list of aborted transactions for the client
to filter, read_committed is what keeps them out of the store.
"""

from __future__ import annotations

import json

import pytest
from kafka import KafkaProducer
from sqlalchemy import select

from servicescheduler.consumers.clients import kafka as kafka_client
from servicescheduler.storage.models import DeadLetter, Event
from tests.conftest import wait_until
from tests.test_consumer_kafka import _count, _events

pytestmark = pytest.mark.kafka


@pytest.mark.parametrize(
    ("override", "expected"),
    [({}, "read_committed"), ({"kafka_isolation_level": "read_uncommitted"}, "read_uncommitted")],
)
def test_kafka_python_consumer_is_built_with_the_isolation_level(kafka_settings, override, expected) -> None:
    from kafka.consumer.fetcher import IsolationLevel

    consumer = kafka_client.build_consumer(kafka_settings(**override))
    try:
        assert consumer.config["isolation_level"] == expected
        # What the fetcher actually sends in its fetch requests (and uses to skip aborted batches).
        assert consumer._fetcher._isolation_level == (
            IsolationLevel.READ_COMMITTED if expected == "read_committed" else IsolationLevel.READ_UNCOMMITTED
        )
    finally:
        consumer.close(autocommit=False)


@pytest.mark.parametrize(
    ("override", "expected"),
    [({}, "read_committed"), ({"kafka_isolation_level": "read_uncommitted"}, "read_uncommitted")],
)
def test_confluent_consumer_is_built_with_the_isolation_level(kafka_settings, monkeypatch, override, expected) -> None:
    import confluent_kafka

    configs: list[dict] = []
    real = confluent_kafka.Consumer

    def recording(config):
        configs.append(dict(config))
        return real(config)

    monkeypatch.setattr(confluent_kafka, "Consumer", recording)
    consumer = kafka_client.build_consumer(kafka_settings(kafka_client="confluent-kafka", **override))
    try:
        assert [config["isolation.level"] for config in configs] == [expected]
    finally:
        consumer.close()


def test_an_unknown_isolation_level_is_refused(make_settings) -> None:
    from servicescheduler.settings import SettingsError

    with pytest.raises(SettingsError, match="KAFKA_ISOLATION_LEVEL.*read_committed.*read_everything"):
        make_settings(kafka_isolation_level="read_everything")


@pytest.mark.parametrize("client", ["kafka-python", "confluent-kafka"])
def test_a_transactional_producers_batches_flow_and_its_aborted_records_are_not_stored(
    kafka, kafka_topic, kafka_settings, open_worker, client
) -> None:
    """Transactional lz4 batches and their commit/abort markers through each consumer (read_committed).

    Measured on Tansu: the aborted records are not consumed with read_uncommitted either, so this
    shows that transactional batches and control markers pass the batch guard, not the level.
    """
    from confluent_kafka import Producer

    producer = Producer(
        {"bootstrap.servers": kafka.bootstrap, "transactional.id": f"tx-{kafka_topic}", "compression.type": "lz4"}
    )
    producer.init_transactions(30)
    for prefix, commit in (("committed-", True), ("aborted-", False)):
        producer.begin_transaction()
        for event in _events(20, prefix):
            producer.produce(kafka_topic, json.dumps(event).encode(), key=event["id"].encode(), partition=0)
        if commit:
            producer.commit_transaction(30)
        else:
            producer.abort_transaction(30)
    del producer  # librdkafka's client is closed when the last reference goes
    plain = KafkaProducer(bootstrap_servers=[kafka.bootstrap], acks="all")
    try:  # behind the aborted transaction in the same partition: once it is stored, all before it was read
        plain.send(kafka_topic, value=json.dumps(_events(1, "sentinel-")[0]).encode(), partition=0)
        plain.flush(timeout=30)
    finally:
        plain.close(timeout=5)
    worker = open_worker(kafka_settings(kafka_client=client))
    database = worker.database

    def sentinel_stored() -> bool:
        worker.poll_once()
        with database.read_session() as session:
            return session.get(Event, "sentinel-0") is not None

    wait_until(sentinel_stored, timeout=30)
    with database.read_session() as session:
        ids = set(session.scalars(select(Event.id)))
    assert ids == {f"committed-{i}" for i in range(20)} | {"sentinel-0"}
    assert _count(database, DeadLetter) == 0
