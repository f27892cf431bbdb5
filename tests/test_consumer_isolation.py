"""KAFKA_ISOLATION_LEVEL: both clients are built read_committed unless told otherwise.

What is proven here is the configuration of the clients as built: the dev broker (Tansu) does
not filter the records of aborted transactions out of a read_committed fetch (it returns no
aborted-transaction list), so a test producing an aborted transaction could not tell the two
levels apart. Against real Kafka, read_committed is what keeps aborted records out of the store.
"""

from __future__ import annotations

import pytest

from servicescheduler.consumers.clients import kafka as kafka_client

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
