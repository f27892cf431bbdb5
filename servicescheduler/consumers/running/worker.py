"""ConsumerWorker: one thread (`kafka-consumer`) that polls Kafka, stores batches, then commits.

The thread creates its OWN KafkaConsumer (kafka-python clients are not thread-safe) and is the
only one touching it. Per batch: decode each message (bad ones become dead letters), run the
handlers and store everything in one transaction, THEN commit the offsets, then ask for a
notifications run. With KAFKA_STORE_AHEAD the thread stores each batch on the `kafka-store`
thread while it polls and decodes the next one (consumers/storeahead.py); `poll_once()` does all
of one step inline. A database failure that is not a refused value (transient: locked, full,
down; or the system's own: read-only, permissions) stores and commits nothing: the partitions are
rewound to the first unstored offset and paused while the worker backs off, still polling so the
group membership stays alive, and the state is `db_unavailable` until a store succeeds. Other
threads read a published snapshot (`snapshot()`).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from kafka.structs import TopicPartition

from servicescheduler import tracing
from servicescheduler.consumers.clients import kafka as kafka_client
from servicescheduler.consumers.clients.rebalance import CommitOnRevoke
from servicescheduler.consumers.decoding.contracts import TopicRegistry, subscribing
from servicescheduler.consumers.decoding.deadletter import publish_copies
from servicescheduler.consumers.decoding.intake import decode_batch
from servicescheduler.consumers.running.status import ConsumerStatus, WorkerSnapshot
from servicescheduler.consumers.running.topic_counts import declare_topics
from servicescheduler.consumers.storing.handlers import HandlerRegistry, handlers
from servicescheduler.consumers.storing.offsets import PendingOffsets
from servicescheduler.consumers.storing.store import DeadRow, Prepared, StoreResult, is_transient_db_error, store_batch
from servicescheduler.consumers.storing.storeahead import StoreAhead
from servicescheduler.consumers.storing.watchdog import HandlerWatch, RunningHandler
from servicescheduler.logs import get_logger
from servicescheduler.metrics import Metrics
from servicescheduler.settings import Settings
from servicescheduler.storage.db import Database
from servicescheduler.storage.db_errors import is_db_error
from servicescheduler.support.backoff import backoff_ceiling
from servicescheduler.vocabulary import WorkerState

log = get_logger(__name__)

# While a batch is being stored, poll waits at most this long for the next one: under load the
# fetch returns well before, and on a quiet topic the stored batch is committed this much later.
STORE_AHEAD_POLL_MS = 20
MAX_TRACED_BATCHES = 4


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
        topics: TopicRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.contracts = topics.as_dict() if topics is not None else {}  # declared topics, by name
        self.database = database
        self.metrics = metrics or Metrics()
        self.registry = registry
        self.watch = HandlerWatch(registry)
        self.on_notifications = on_notifications
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer: Any = None
        self._producer: Any = None
        self._pending = PendingOffsets(self._commit_timeout_ms, lambda error: self._publish(last_error=error))
        self._db_failures = 0
        self._db_waiting: set[TopicPartition] = set()  # partitions rewound for the database
        self._ahead = StoreAhead(self._store)
        self._failure: Exception | None = None  # of the batch in flight, met by a wait
        self._unstored: list[dict[TopicPartition, list[Any]]] = []  # its records, to rewind
        # Spans of the batches decoded but not yet stored, by id() of their poll result (at most
        # two: one storing ahead, one just polled). Empty while tracing is off.
        self._traces: dict[int, tracing.BatchTrace] = {}
        self.status = ConsumerStatus(self.metrics)
        declare_topics(self.metrics, [*settings.topics, *self.contracts])

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
        return self.status.snapshot().fatal_error

    def snapshot(self) -> WorkerSnapshot:
        """The published counters and status (immutable: safe from any thread)."""
        return self.status.snapshot()

    def _publish(self, **values: Any) -> None:
        self.status.publish(**values)

    def _run(self) -> None:
        """Thread body: open, poll until told to stop, close; a fatal error ends it, logged once."""
        try:
            self.open()
            self._publish(state="running")
            while not self._stop.is_set():
                outcome = self._step()
                if outcome.retry_in > 0:
                    self._wait_paused(outcome.retry_in)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            self._publish(fatal_error=error, last_error=error)
            log.error(
                "consumer_fatal",
                error=error,
                bootstrap=self.settings.kafka_bootstrap_servers,
                topics=[*self.settings.topics, *self.contracts],
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
        self._consumer = kafka_client.build_consumer(subscribing(self.settings, list(self.contracts)), listener)
        self._publish(broker_ok_at=time.time())
        if self.settings.kafka_dlq_topic:
            self._producer = kafka_client.build_producer(self.settings)

    def close(self) -> None:
        """Commits what was stored, leaves the group and closes the clients (idempotent)."""
        consumer, self._consumer = self._consumer, None
        producer, self._producer = self._producer, None
        if consumer is not None:
            try:
                self._finish_in_flight()  # a failure leaves its offsets uncommitted: replayed
                self._commit_pending(consumer)
            except Exception as exc:  # stored rows are safe; the replay is deduplicated
                log.warning("consumer_final_commit_failed", error=f"{type(exc).__name__}: {exc}")
            self._quietly(consumer.close, autocommit=False, timeout_ms=self._commit_timeout_ms())
        self._ahead.close()
        self._failure, self._unstored = None, []  # a restart polls again from the committed offsets
        for trace in self._traces.values():
            trace.end({}, error="the consumer stopped before the batch was stored")
        self._traces.clear()
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

        Returns what happened; a database failure rewinds the batch and sets `retry_in`.
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
            self._nothing_waits_to_be_stored(consumer)
            return PollOutcome()
        started = time.perf_counter()
        try:
            result = self.process(records)
        except Exception as exc:
            if not is_db_error(exc):  # refused values were dead-lettered inside: this is the database's state
                raise
            return self._rewind(consumer, [records], exc)
        self._stored(records, result, time.perf_counter() - started)
        committed = self._commit_pending(consumer)
        return PollOutcome(
            sum(len(m) for m in records.values()), result.events_stored, result.duplicates, len(result.dead), committed
        )

    @functools.cached_property
    def stores_ahead(self) -> bool:
        """KAFKA_STORE_AHEAD resolved (docs/benchmarks.md, 7): "auto" stores ahead on SQLite, and on
        PostgreSQL with kafka-python, whose pure-Python fetch overlaps the store's round trips
        (1.6x in paired runs); not on PostgreSQL with confluent-kafka, whose fetch already runs
        in librdkafka's threads (paired runs: off as fast or faster, and less CPU per event)."""
        ahead = self.settings.kafka_store_ahead
        if ahead != "auto":
            return ahead == "on"
        return self.database.engine.dialect.name == "sqlite" or self.settings.kafka_client == "kafka-python"

    def _step(self) -> PollOutcome:
        """The thread's step: overlapped with storing (KAFKA_STORE_AHEAD), or poll_once()."""
        return self._step_ahead() if self.stores_ahead else self.poll_once()

    def _step_ahead(self) -> PollOutcome:
        """Polls and decodes batch N+1 while batch N is stored, then commits N.

        Only a full batch is left storing (a backlog, where throughput counts); a partial one
        means the consumer has caught up, so it is waited for at once and neither its
        notifications nor its commit wait for the next poll. Counts describe the poll.
        """
        consumer = self._consumer
        self._commit_pending(consumer)
        timeout_ms = self.settings.kafka_poll_timeout_ms
        if self._ahead.busy:  # the backlog may just have ended: do not hold batch N back long
            timeout_ms = min(timeout_ms, STORE_AHEAD_POLL_MS)
        records = consumer.poll(timeout_ms=timeout_ms, max_records=self.settings.kafka_batch_size)
        self.status.observe(consumer)
        if not records and not self._ahead.busy:
            self._nothing_waits_to_be_stored(consumer)
        decoded = self._decode(records) if records else None
        self._finish_in_flight()
        messages = sum(len(m) for m in records.values())
        if decoded is not None and self._failure is None:
            self._ahead.submit(records, *decoded)
            if messages < self.settings.kafka_batch_size:
                self._finish_in_flight()
        if self._failure is not None:
            failure, unstored, self._failure, self._unstored = self._failure, self._unstored, None, []
            if not is_db_error(failure):
                raise failure
            return self._rewind(consumer, [*unstored, records], failure)  # what was polled goes back too
        return PollOutcome(messages=messages, committed=self._commit_pending(consumer))

    def _finish_in_flight(self) -> None:
        """Waits for the batch on the store thread; if stored, counts it, offsets pending commit.

        A failure is kept (`_failure`, its records in `_unstored`) for the step to act on, since
        a rebalance's wait may meet it inside poll().
        """
        done = self._ahead.take()
        if done is None:
            return
        if done.result is not None:
            self._stored(done.records, done.result, done.seconds)
        else:
            self._failure = done.error or RuntimeError("the store thread ended without a result")
            self._unstored.append(done.records)

    def _stored(self, records: dict[TopicPartition, list[Any]], result: StoreResult, seconds: float) -> None:
        """A batch is in the database: count it, copy its dead letters, its offsets to commit."""
        if self._db_failures:
            self._db_available()
        self._publish_dead(result.dead)
        trace = self._traces.pop(id(records), None) if self._traces else None
        if trace is not None:
            trace.end({(d.topic, d.partition, d.offset): d.reason for d in result.dead})
        # Counted (and notifications requested) as soon as the rows are stored: the commit
        # can take a broker round trip, and status must not lag behind the database.
        self._account(records, result, seconds)
        self._pending.add(records)

    def process(self, records: dict[TopicPartition, list[Any]]) -> StoreResult:
        """Decodes and stores one poll result ({TopicPartition: [records]}) without Kafka I/O.

        Every message ends up stored or dead-lettered; only database failures that are not
        about a message (transient, or the system's own) propagate.
        """
        return self._store(*self._decode(records))

    def _store(self, prepared: list[Prepared], dead: list[DeadRow]) -> StoreResult:
        """Runs the handlers and stores one decoded batch in one transaction."""
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
        prepared, dead = decode_batch(
            records, max_bytes=self.settings.kafka_max_message_bytes, contracts=self.contracts
        )
        if tracing.enabled():  # one check per batch: nothing per message while tracing is off
            self._trace(records, prepared)
        return prepared, dead

    def _trace(self, records: dict[TopicPartition, list[Any]], prepared: list[Prepared]) -> None:
        """Starts the batch's spans; each decoded message carries its span's context from here
        (to the notification it creates)."""
        while len(self._traces) >= MAX_TRACED_BATCHES:  # process() called without a store: not leaked
            self._traces.pop(next(iter(self._traces))).end({}, error="the batch was never reported stored")
        trace = tracing.BatchTrace(records, self.settings.kafka_group_id)
        self._traces[id(records)] = trace
        for item in prepared:
            m = item.meta
            parent = trace.traceparent(m.topic, m.partition, m.offset)
            if parent is not None:
                item.meta = msgspec.structs.replace(m, traceparent=parent)

    def _rewind(self, consumer: Any, batches: list[dict[TopicPartition, list[Any]]], exc: Exception) -> PollOutcome:
        """Seeks each partition of the unstored batches back to its first offset; backs off."""
        first: dict[TopicPartition, int] = {}
        for records in batches:
            trace = self._traces.pop(id(records), None)
            if trace is not None:
                trace.end({}, error=f"not stored: {type(exc).__name__} (the batch is consumed again)")
            for tp, messages in records.items():
                first[tp] = min(first.get(tp, messages[0].offset), messages[0].offset)
        assigned = consumer.assignment()  # a rebalance meanwhile resets the others from commits
        for tp, offset in first.items():
            if tp in assigned:
                consumer.seek(tp, offset)
        self._db_failures += 1
        s = self.settings
        delay = backoff_ceiling(
            self._db_failures - 1,
            base=s.consumer_backoff_base_seconds,
            cap=s.consumer_backoff_cap_seconds,
            factor=s.consumer_backoff_factor,
        )
        error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
        self._db_waiting |= set(first)
        since = self.status.snapshot().db_unavailable_since or time.time()
        self._publish(last_error=error, state=WorkerState.DB_UNAVAILABLE, db_error=error, db_unavailable_since=since)
        log.warning(
            "consumer_db_unavailable",
            # False: the system's own (read-only, permissions, missing table): an operator must act.
            transient=is_transient_db_error(exc),
            attempt=self._db_failures,
            retry_in_seconds=round(delay, 3),
            messages=sum(len(m) for records in batches for m in records.values()),
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
        # Still DB_UNAVAILABLE: only a store that succeeds (or nothing left to store) ends it.

    def _db_available(self) -> None:
        """A store succeeded after failures: the consumer runs again (logged with the outage's length)."""
        since = self.status.snapshot().db_unavailable_since
        log.info(
            "consumer_db_available",
            failed_attempts=self._db_failures,
            unavailable_seconds=None if since is None else round(time.time() - since, 1),
        )
        self._db_failures = 0
        self._db_waiting = set()
        self._publish(state=WorkerState.RUNNING, db_error=None, db_unavailable_since=None)

    def _nothing_waits_to_be_stored(self, consumer: Any) -> None:
        """An empty poll while DB_UNAVAILABLE: if no rewound partition is still ours (a rebalance
        moved them), nothing waits for the database here any more, so the state is left."""
        if self._db_failures and not (self._db_waiting & consumer.assignment()):
            self._db_available()

    def _commit_pending(self, consumer: Any) -> bool:
        """Commits stored-but-uncommitted offsets; returns True when nothing is left pending."""
        return self._pending.commit(consumer)

    def _commit_revoked(self, revoked: set[TopicPartition]) -> None:
        """Rebalance listener: commits the stored offsets of partitions about to be revoked."""
        self._finish_in_flight()  # the batch being stored may hold some of them
        self._pending.commit_revoked(self._consumer, revoked)

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
