"""Per-topic counts of the consumer: events stored, duplicates and dead letters, with lag.

Kept as immutable tables (a new dict per stored batch) so a published snapshot never changes
under its readers; the supervisor sums the tables of finished workers with the live one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from servicescheduler.consumers.storing.store import StoreResult
from servicescheduler.metrics import Metrics

TopicCounts = dict[str, tuple[int, int, int]]  # topic -> (events stored, duplicates, dead letters)


def add_topic_counts(counts: dict[str, tuple[int, int, int]], result: StoreResult) -> dict[str, tuple[int, int, int]]:
    """`counts` plus a stored batch's per-topic events, duplicates and dead letters (a new dict)."""
    merged = dict(counts)
    for topic, (stored, duplicates) in result.by_topic.items():
        was = merged.get(topic, (0, 0, 0))
        merged[topic] = (was[0] + stored, was[1] + duplicates, was[2])
    for dead in result.dead:
        was = merged.get(dead.topic, (0, 0, 0))
        merged[dead.topic] = (was[0], was[1], was[2] + 1)
    return merged


def declare_topics(metrics: Metrics, topics: Iterable[str]) -> None:
    """Starts each consumed topic's dead-letter count at 0: the alert takes its increase(), and a
    series born at its first dead letter (value 1) would show Prometheus no increase."""
    for topic in topics:
        metrics.topic_events.labels(topic, "dead_lettered")


def count_topics(metrics: Metrics, result: StoreResult) -> None:
    """Adds a stored batch to `consumer_topic_events_total`: one increment per topic and result
    (the batch's per-topic sums), never one per message."""
    dead: dict[str, int] = {}
    for row in result.dead:
        dead[row.topic] = dead.get(row.topic, 0) + 1
    events = metrics.topic_events
    for topic, (stored, duplicates) in result.by_topic.items():
        if stored:
            events.labels(topic, "stored").inc(stored)
        if duplicates:
            events.labels(topic, "duplicate").inc(duplicates)
    for topic, count in dead.items():
        events.labels(topic, "dead_lettered").inc(count)


def lag_by_topic(lag: dict[str, int | None] | None) -> dict[str, int | None]:
    """Per topic, the sum of its partitions' known lag ("topic:partition" keys); None when none is known."""
    by_topic: dict[str, int | None] = {}
    for where, behind in (lag or {}).items():
        topic = where.rpartition(":")[0]
        known = by_topic.get(topic)
        by_topic[topic] = known if behind is None else (known or 0) + behind
    return by_topic


def merge_topic_counts(
    into: dict[str, tuple[int, int, int]], counts: dict[str, tuple[int, int, int]]
) -> dict[str, tuple[int, int, int]]:
    """The sum of two per-topic count tables (a new dict)."""
    merged = dict(into)
    for topic, (stored, duplicates, dead) in counts.items():
        was = merged.get(topic, (0, 0, 0))
        merged[topic] = (was[0] + stored, was[1] + duplicates, was[2] + dead)
    return merged


def topics_view(counts: dict[str, tuple[int, int, int]], lag: dict[str, int | None] | None) -> dict[str, Any]:
    """Per topic: events stored, duplicates, dead letters and lag (the sum over its partitions
    whose lag is known; None when none is) — the API's `topics`."""
    lags = lag_by_topic(lag)
    return {
        topic: {
            "stored": counts.get(topic, (0, 0, 0))[0],
            "duplicates": counts.get(topic, (0, 0, 0))[1],
            "dead_lettered": counts.get(topic, (0, 0, 0))[2],
            "lag": lags.get(topic),
        }
        for topic in sorted(set(counts) | set(lags))
    }
