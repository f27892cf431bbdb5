"""Per-topic Prometheus series of the consumer: `consumer_topic_events_total{topic,result}` and
`consumer_topic_lag{topic}`, fed where /consumer's per-topic counts are (one increment per topic
and result per stored batch). Unit level through ConsumerStatus.account; the Kafka test of the
real app's /metrics is in tests/test_topics_kafka.py.
"""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from servicescheduler.consumers.decoding.deadletter import DeadRow
from servicescheduler.consumers.running.status import ConsumerStatus
from servicescheduler.consumers.running.topic_counts import lag_by_topic
from servicescheduler.consumers.storing.store import StoreResult
from servicescheduler.metrics import Metrics


def _dead(topic: str, offset: int) -> DeadRow:
    return DeadRow(topic, 0, offset, None, b"{}", "schema", "order_id: Field required")


def _samples(metrics: Metrics, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


def test_each_stored_batch_counts_per_topic_and_result_like_the_consumer_status() -> None:
    metrics = Metrics()
    status = ConsumerStatus(metrics)
    status.account(
        9,
        StoreResult(
            events_stored=7, duplicates=1, by_topic={"orders": (5, 1), "events": (2, 0)}, dead=[_dead("orders", 8)]
        ),
        0.01,
    )
    status.account(
        3,
        StoreResult(events_stored=1, by_topic={"orders": (1, 0)}, dead=[_dead("payments", 1), _dead("payments", 2)]),
        0.01,
    )
    events = _samples(metrics, "consumer_topic_events_total")
    assert events == {
        (("result", "stored"), ("topic", "orders")): 6.0,
        (("result", "duplicate"), ("topic", "orders")): 1.0,
        (("result", "dead_lettered"), ("topic", "orders")): 1.0,
        (("result", "stored"), ("topic", "events")): 2.0,
        (("result", "dead_lettered"), ("topic", "payments")): 2.0,
    }  # a result that never happened has no series: no zero-valued noise per topic
    # The same numbers as GET /consumer's `topics` (stored, duplicates, dead letters).
    assert status.snapshot().topics == {"orders": (6, 1, 1), "events": (2, 0, 0), "payments": (0, 0, 2)}
    # The totals still add up across topics.
    assert _samples(metrics, "consumer_events_stored_total") == {(): 8.0}


def test_a_topics_lag_is_the_sum_of_its_known_partitions() -> None:
    assert lag_by_topic({"orders:0": 3, "orders:1": None, "orders:2": 4, "a:b:0": 1, "idle:0": None}) == {
        "orders": 7,
        "a:b": 1,
        "idle": None,
    }
    assert lag_by_topic(None) == {}
