"""ConsumerWorker: one thread (`kafka-consumer`) that polls Kafka, stores batches, then commits.

The thread creates its OWN KafkaConsumer (kafka-python clients are not thread-safe) and is the
only one touching it. Per batch: decode each message (bad ones become dead letters), run the
handlers and store everything in one transaction, THEN commit the offsets, then ask for a
notifications run. A transient database failure stores and commits nothing: the partitions are
rewound to the first unstored offset and paused while the worker backs off, still polling so the
group membership stays alive. Other threads read a published snapshot (`snapshot()`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata, TopicPartition

from consumers import client as kafka_client
from consumers.deadletter import publish_copies
from consumers.handlers import HandlerRegistry, handlers
from consumers.intake import decode_batch
from consumers.rebalance import CommitOnRevoke
from consumers.status import ConsumerStatus
from consumers.store import DeadRow, Prepared, StoreResult, is_transient_db_error, store_batch
from consumers.watchdog import HandlerWatch, RunningHandler
from logs import get_logger
from metrics import Metrics
from settings import Settings
from storage.db import Database
from support.backoff import backoff_ceiling

log = get_logger(__name__)


@dataclass
class PollOutcome:
    """What one poll step did; `retry_in` > 0 means the batch was rewound after a DB failure."""

    messages: int = 0
    stored: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    committed: bool = False
    retry_in: float = 0.0


class ConsumerWorker:
    """Consumes, validates, stores and commits on its own thread; `poll_once()` for tests."""

    def __init__(
        self,
        *,
        settings: Settings,
        database: Database,
        metrics: Metrics | None = None,
        registry: HandlerRegistry = handlers,
        on_notifications: Callable[[], object] | None = None,
    ) -> None:
        self.settings = settings
        self.database = database
        self.metrics = metrics or Metrics()
        self.registry = registry
        self.watch = HandlerWatch(registry)
        self.on_notifications = on_notifications
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer: Any = None
        self._producer: Any = None
        self._pending: dict[TopicPartition, OffsetAndMetadata] = {}
        self._db_failures = 0
        self.status = ConsumerStatus(self.metrics)

    # ------------------------------------------------------------------ thread control
    def start(self) -> None:
        """Starts the `kafka-consumer` thread (returns at once; bootstrapping happens in the thread)."""
        self._stop.clear()
        self._publish(state="starting", started_at=time.time(), broker_ok_at=time.time(), fatal_error=None)
        self._thread = threading.Thread(target=self._run, name="kafka-consumer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> bool:
        """Signals the thread to finish its batch, commit, leave the group and close.

        Blocks up to `timeout` seconds; returns True when the thread has ended.
        """
        self._stop.set()
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        if thread.is_alive():
            log.warning(
                "consumer_stop_timeout",
                timeout_seconds=timeout,
                hint="thread still bootstrapping or blocked; it exits when that returns",
            )
            return False
        return True

    def is_alive(self) -> bool:
        """True while the thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def running_handler(self) -> RunningHandler | None:
        """The handler call in progress on the thread, if any (see HandlerWatch)."""
        return self.watch.running()

    @property
    def fatal_error(self) -> str | None:
        """Why the thread ended on its own, if it did."""
        error: str | None = self.status.get("fatal_error")
        return error

    def snapshot(self) -> dict[str, Any]:
        """A copy of the published counters and status (safe from any thread)."""
        return self.status.snapshot()

    def _publish(self, **values: Any) -> None:
        self.status.publish(**values)

    def _run(self) -> None:
        """Thread body: open, poll until told to stop, close; a fatal error ends it, logged once."""
        try:
            self.open()
            self._publish(state="running")
            while not self._stop.is_set():
                outcome = self.poll_once()
                if outcome.retry_in > 0:
                    self._wait_paused(outcome.retry_in)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            self._publish(fatal_error=error, last_error=error)
            log.error(
                "consumer_fatal",
                error=error,
                bootstrap=self.settings.kafka_bootstrap_servers,
                topics=self.settings.topics,
                group_id=self.settings.kafka_group_id,
                exc_info=True,
            )
        finally:
            self.close()
            self._publish(state="failed" if self.fatal_error else "stopped", assigned_partitions=[], lag=None)

    # ------------------------------------------------------------------ client lifecycle
    def open(self) -> None:
        """Creates the consumer (and the DLQ producer) in the calling thread; may block to bootstrap."""
        # Cluster hook: replicas share the group; a rebalance first commits what was stored.
        listener = CommitOnRevoke(self._commit_revoked, lambda assigned: self._publish(assigned_partitions=assigned))
        self._consumer = kafka_client.build_consumer(self.settings, listener)
        self._publish(broker_ok_at=time.time())
        if self.settings.kafka_dlq_topic:
            self._producer = kafka_client.build_producer(self.settings)

    def close(self) -> None:
        """Commits what was stored, leaves the group and closes the clients (idempotent)."""
        consumer, self._consumer = self._consumer, None
        producer, self._producer = self._producer, None
        if consumer is not None:
            try:
                self._commit_pending(consumer)
            except Exception as exc:  # stored rows are safe; the replay is deduplicated
                log.warning("consumer_final_commit_failed", error=f"{type(exc).__name__}: {exc}")
            self._quietly(consumer.close, autocommit=False, timeout_ms=self._commit_timeout_ms())
        if producer is not None:
            self._quietly(producer.close, timeout=2)

    @staticmethod
    def _quietly(close: Callable[..., Any], **kwargs: Any) -> None:
        try:
            close(**kwargs)
        except Exception as exc:
            log.warning("consumer_close_failed", error=f"{type(exc).__name__}: {exc}")

    def _commit_timeout_ms(self) -> int:
        return int(min(self.settings.kafka_request_timeout_ms, self.settings.kafka_stop_timeout_seconds * 500))

    # ------------------------------------------------------------------ one step
    def poll_once(self) -> PollOutcome:
        """Polls one batch, stores it in one transaction, then commits its offsets.

        Returns what happened; a transient DB failure rewinds the batch and sets `retry_in`.
        """
        consumer = self._consumer
        if consumer is None:
            raise RuntimeError("poll_once() before open()")
        self._commit_pending(consumer)
        records = consumer.poll(
            timeout_ms=self.settings.kafka_poll_timeout_ms, max_records=self.settings.kafka_batch_size
        )
        self.status.observe(consumer)
        if not records:
            return PollOutcome()
        started = time.perf_counter()
        try:
            result = self.process(records)
        except Exception as exc:
            if not is_transient_db_error(exc):
                raise
            return self._rewind(consumer, records, exc)
        self._db_failures = 0
        self._publish_dead(result.dead)
        # Counted (and notifications requested) as soon as the rows are stored: the commit
        # below can take a broker round trip, and status must not lag behind the database.
        self._account(records, result, time.perf_counter() - started)
        self._pending.update({tp: OffsetAndMetadata(msgs[-1].offset + 1, "", -1) for tp, msgs in records.items()})
        committed = self._commit_pending(consumer)
        return PollOutcome(
            sum(len(m) for m in records.values()), result.events_stored, result.duplicates, len(result.dead), committed
        )

    def process(self, records: dict[TopicPartition, list[Any]]) -> StoreResult:
        """Decodes and stores one poll result ({TopicPartition: [records]}) without Kafka I/O.

        Every message ends up stored or dead-lettered; only database failures that are not
        about a message (transient, or the system's own) propagate.
        """
        prepared, dead = self._decode(records)
        return store_batch(
            self.database,
            prepared=prepared,
            dead=dead,
            registry=self.watch,
            max_attempts=self.settings.kafka_max_attempts,
            value_cap=self.settings.kafka_dead_letter_value_cap_bytes,
        )

    def _decode(self, records: dict[TopicPartition, list[Any]]) -> tuple[list[Prepared], list[DeadRow]]:
        """Splits a poll result into decoded messages and dead letters (see decode_batch)."""
        return decode_batch(records, max_bytes=self.settings.kafka_max_message_bytes)

    def _rewind(self, consumer: Any, records: dict[TopicPartition, list[Any]], exc: Exception) -> PollOutcome:
        """Seeks every partition of the batch back to its first (unstored) offset; backs off."""
        for tp, messages in records.items():
            consumer.seek(tp, messages[0].offset)
        self._db_failures += 1
        s = self.settings
        delay = backoff_ceiling(
            self._db_failures - 1,
            base=s.consumer_backoff_base_seconds,
            cap=s.consumer_backoff_cap_seconds,
            factor=s.consumer_backoff_factor,
        )
        error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
        self._publish(last_error=error, state="db_unavailable")
        log.warning(
            "consumer_db_unavailable",
            attempt=self._db_failures,
            retry_in_seconds=round(delay, 3),
            messages=sum(len(m) for m in records.values()),
            error=error,
        )
        return PollOutcome(messages=0, retry_in=delay)

    def _wait_paused(self, seconds: float) -> None:
        """Backs off with every partition paused, polling so the group does not evict us."""
        consumer = self._consumer
        consumer.pause(*consumer.assignment())
        deadline = time.monotonic() + seconds
        while not self._stop.is_set() and (remaining := deadline - time.monotonic()) > 0:
            stray = consumer.poll(timeout_ms=max(1, int(min(remaining, 0.2) * 1000)), max_records=1)
            for tp, messages in stray.items():  # a partition assigned by a rebalance meanwhile
                consumer.seek(tp, messages[0].offset)
            consumer.pause(*consumer.assignment())
            self.status.observe(consumer)
        consumer.resume(*consumer.paused())
        self._publish(state="running")

    def _commit_pending(self, consumer: Any) -> bool:
        """Commits stored-but-uncommitted offsets; returns True when nothing is left pending."""
        if not self._pending:
            return True
        offsets = dict(self._pending)
        try:
            consumer.commit(offsets, timeout_ms=self._commit_timeout_ms())
        except CommitFailedError as exc:  # rebalanced away: the new owner replays, deduplicated
            self._pending.clear()
            log.warning("consumer_commit_failed", error=str(exc), offsets=_describe(offsets), retry=False)
            return False
        except KafkaError as exc:
            self._publish(last_error=f"commit: {exc}")
            log.warning("consumer_commit_failed", error=str(exc), offsets=_describe(offsets), retry=True)
            return False
        for tp, offset in offsets.items():
            if self._pending.get(tp) == offset:
                del self._pending[tp]
        return True

    def _commit_revoked(self, revoked: set[TopicPartition]) -> None:
        """Rebalance listener: commits the stored offsets of partitions about to be revoked."""
        consumer = self._consumer
        offsets = {tp: meta for tp, meta in self._pending.items() if tp in revoked}
        if consumer is None or not offsets:
            return
        consumer.commit(offsets, timeout_ms=self._commit_timeout_ms())
        for tp in offsets:
            self._pending.pop(tp, None)
        log.info("consumer_revoked_offsets_committed", offsets=_describe(offsets))

    def _publish_dead(self, dead: list[DeadRow]) -> None:
        """Copies dead letters to the DLQ topic when configured (best effort: the table has them)."""
        if self._producer is not None and dead:
            publish_copies(
                self._producer, self.settings.kafka_dlq_topic or "", dead, timeout=self._commit_timeout_ms() / 1000
            )

    def _account(self, records: dict[TopicPartition, list[Any]], result: StoreResult, seconds: float) -> None:
        """Counts a stored batch (status and metrics); requests a notifications run."""
        self.status.account(sum(len(m) for m in records.values()), result, seconds)
        if result.notifications_created and self.on_notifications is not None:
            try:
                self.on_notifications()
            except Exception as exc:  # delivery still happens on the task's own schedule
                log.warning("consumer_notify_request_failed", error=f"{type(exc).__name__}: {exc}")


def _describe(offsets: dict[TopicPartition, OffsetAndMetadata]) -> dict[str, int]:
    return {f"{tp.topic}:{tp.partition}": meta.offset for tp, meta in offsets.items()}
