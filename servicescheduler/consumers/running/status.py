"""ConsumerStatus: what the consumer thread publishes, for every other thread to read.

The consumer thread is the only writer; the API, the supervisor and the dashboard read copies
(`snapshot()`) under one lock. Counters and Prometheus metrics move together, per stored batch.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass
from typing import Any

from servicescheduler.consumers.clients import kafka as kafka_client
from servicescheduler.consumers.running.topic_counts import add_topic_counts, count_topics
from servicescheduler.consumers.storing.store import StoreResult
from servicescheduler.metrics import Metrics
from servicescheduler.vocabulary import WorkerState

LAG_REFRESH_SECONDS = 1.0  # lag is computed at most this often (it walks every partition)


@dataclass(frozen=True)
class WorkerSnapshot:
    """What one consumer worker has published, as read at one instant (the supervisor's input)."""

    state: WorkerState = WorkerState.NEW
    messages_processed: int = 0
    events_stored: int = 0
    duplicates_skipped: int = 0
    dead_lettered: int = 0
    last_message_at: float | None = None  # epoch seconds
    last_poll_at: float | None = None
    assigned_partitions: tuple[str, ...] = ()  # "topic:partition", sorted
    lag: dict[str, int | None] | None = None  # "topic:partition" → messages behind
    last_error: str | None = None
    fatal_error: str | None = None  # why the thread ended on its own
    broker_ok_at: float | None = None  # last time the broker was seen connected
    broker_connected: bool | None = None
    started_at: float | None = None
    db_error: str | None = None  # why storing fails, while the state is DB_UNAVAILABLE
    db_unavailable_since: float | None = None
    # topic -> (events stored, duplicates, dead letters): a new dict per stored batch, never changed
    topics: dict[str, tuple[int, int, int]] = dataclasses.field(default_factory=dict)


class ConsumerStatus:
    """The consumer's published state and counters (thread-safe)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._lock = threading.Lock()
        self._lag_at = 0.0
        self._snapshot = WorkerSnapshot()

    def snapshot(self) -> WorkerSnapshot:
        """The published counters and status (immutable: safe to keep and read from any thread)."""
        with self._lock:
            return self._snapshot

    def publish(self, **values: Any) -> None:
        """Replaces published values (WorkerSnapshot's fields)."""
        if "assigned_partitions" in values:  # a copy: the snapshot must not change under its readers
            values["assigned_partitions"] = tuple(values["assigned_partitions"])
        with self._lock:
            self._snapshot = dataclasses.replace(self._snapshot, **values)

    def account(self, messages: int, result: StoreResult, seconds: float) -> None:
        """Counts a stored batch: status counters and metrics."""
        with self._lock:
            snap = self._snapshot
            self._snapshot = dataclasses.replace(
                snap,
                messages_processed=snap.messages_processed + messages,
                events_stored=snap.events_stored + result.events_stored,
                duplicates_skipped=snap.duplicates_skipped + result.duplicates,
                dead_lettered=snap.dead_lettered + len(result.dead),
                last_message_at=time.time(),
                topics=add_topic_counts(snap.topics, result),
            )
        m = self.metrics
        m.messages_consumed.inc(messages)
        m.events_stored.inc(result.events_stored)
        m.duplicates.inc(result.duplicates)
        for d in result.dead:
            m.dead_lettered.labels(d.kind).inc()
        count_topics(m, result)
        m.batch_seconds.observe(seconds)

    def observe(self, consumer: Any) -> None:
        """Publishes poll time, broker reachability, assignment and (at most every second) lag."""
        now = time.time()
        connected = kafka_client.broker_connected(consumer)
        values: dict[str, Any] = {
            "last_poll_at": now,
            "broker_connected": connected,
            "assigned_partitions": tuple(sorted(f"{tp.topic}:{tp.partition}" for tp in consumer.assignment())),
        }
        if connected:
            values["broker_ok_at"] = now
        if now - self._lag_at >= LAG_REFRESH_SECONDS:
            self._lag_at = now
            values["lag"] = kafka_client.partition_lag(consumer)
        self.publish(**values)
