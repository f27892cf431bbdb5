"""ConsumerStatus: what the consumer thread publishes, for every other thread to read.

The consumer thread is the only writer; the API, the supervisor and the dashboard read copies
(`snapshot()`) under one lock. Counters and Prometheus metrics move together, per stored batch.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from servicescheduler.consumers.clients import kafka as kafka_client
from servicescheduler.consumers.storing.store import StoreResult
from servicescheduler.metrics import Metrics

LAG_REFRESH_SECONDS = 1.0  # lag is computed at most this often (it walks every partition)
# The consumer runs but cannot store (database full, read-only, locked past its timeout, down):
# nothing is committed, the batch is retried with backoff. Left when a store succeeds again.
DB_UNAVAILABLE = "db_unavailable"


class ConsumerStatus:
    """The consumer's published state and counters (thread-safe)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._lock = threading.Lock()
        self._lag_at = 0.0
        self._stats: dict[str, Any] = {
            "state": "new",
            "messages_processed": 0,
            "events_stored": 0,
            "duplicates_skipped": 0,
            "dead_lettered": 0,
            "last_message_at": None,
            "last_poll_at": None,
            "assigned_partitions": [],
            "lag": None,
            "last_error": None,
            "fatal_error": None,
            "broker_ok_at": None,
            "broker_connected": None,
            "started_at": None,
            "db_error": None,  # why storing fails, while the state is DB_UNAVAILABLE
            "db_unavailable_since": None,
        }

    def snapshot(self) -> dict[str, Any]:
        """A copy of the published counters and status (safe from any thread)."""
        with self._lock:
            return dict(self._stats)

    def get(self, key: str) -> Any:
        """One published value."""
        with self._lock:
            return self._stats[key]

    def publish(self, **values: Any) -> None:
        """Replaces published values."""
        with self._lock:
            self._stats.update(values)

    def account(self, messages: int, result: StoreResult, seconds: float) -> None:
        """Counts a stored batch: status counters and metrics."""
        with self._lock:
            stats = self._stats
            stats["messages_processed"] += messages
            stats["events_stored"] += result.events_stored
            stats["duplicates_skipped"] += result.duplicates
            stats["dead_lettered"] += len(result.dead)
            stats["last_message_at"] = time.time()
        m = self.metrics
        m.messages_consumed.inc(messages)
        m.events_stored.inc(result.events_stored)
        m.duplicates.inc(result.duplicates)
        for d in result.dead:
            m.dead_lettered.labels(d.kind).inc()
        m.batch_seconds.observe(seconds)

    def observe(self, consumer: Any) -> None:
        """Publishes poll time, broker reachability, assignment and (at most every second) lag."""
        now = time.time()
        connected = kafka_client.broker_connected(consumer)
        values: dict[str, Any] = {
            "last_poll_at": now,
            "broker_connected": connected,
            "assigned_partitions": sorted(f"{tp.topic}:{tp.partition}" for tp in consumer.assignment()),
        }
        if connected:
            values["broker_ok_at"] = now
        if now - self._lag_at >= LAG_REFRESH_SECONDS:
            self._lag_at = now
            values["lag"] = kafka_client.partition_lag(consumer)
        self.publish(**values)
