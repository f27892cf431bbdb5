"""The main real-broker flows again with KAFKA_CLIENT=confluent-kafka (librdkafka behind the same worker)."""

from __future__ import annotations

import pytest

from tests import test_consumer_kafka as flows
from tests import test_consumer_poison as poison

pytestmark = pytest.mark.kafka


@pytest.fixture
def confluent_settings(kafka_settings):
    """kafka_settings with the confluent-kafka client."""
    return lambda **overrides: kafka_settings(kafka_client="confluent-kafka", **overrides)


def test_thousand_events_stored_exactly_once_and_committed(
    kafka, kafka_topic, kafka_group, confluent_settings, kafka_producer, open_worker, database_url
) -> None:
    flows.test_thousand_events_stored_exactly_once_and_committed(
        kafka, kafka_topic, kafka_group, confluent_settings, kafka_producer, open_worker, database_url
    )


def test_poison_messages_cost_one_dead_letter_each(
    kafka, kafka_topic, kafka_group, confluent_settings, open_worker, database_url
) -> None:
    poison.test_each_poison_message_costs_one_dead_letter_and_blocks_nothing(
        kafka, kafka_topic, kafka_group, confluent_settings, open_worker, database_url
    )


def test_database_locked_mid_stream_loses_nothing(
    kafka, kafka_topic, kafka_group, confluent_settings, kafka_producer, tmp_path
) -> None:
    flows.test_database_locked_mid_stream_loses_nothing(
        kafka, kafka_topic, kafka_group, confluent_settings, kafka_producer, tmp_path
    )


@pytest.mark.slow  # over 8 s (--durations)
@pytest.mark.timeout(120)
def test_disable_enable_and_crash_mid_stream(
    live_app, kafka_topic, confluent_settings, kafka_producer, monkeypatch
) -> None:
    flows.test_disable_enable_and_crash_mid_stream_no_loss_no_duplicates(
        live_app, kafka_topic, confluent_settings, kafka_producer, monkeypatch
    )


def test_the_confluent_client_is_the_one_consuming(
    kafka_topic, confluent_settings, kafka_producer, open_worker
) -> None:
    from tests.conftest import wait_until

    kafka_producer.send(kafka_topic, flows._events(30))
    worker = open_worker(confluent_settings())
    assert type(worker._consumer).__name__ == "ConfluentConsumer"
    flows._drain(worker, 30)
    caught_up = {f"{kafka_topic}:{p}": 0 for p in range(3)}
    wait_until(lambda: worker.poll_once() and worker.snapshot().lag == caught_up, timeout=10)
    assert worker.snapshot().broker_connected is True
