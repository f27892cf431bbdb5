"""RunRecorder: writes run history and audit entries from its own thread, in batches.

Neither the loop nor a worker waits on the database: they queue records and go on. Rows are
built by storage (storage/history.py); this module only batches, retries and reports idleness.

Only transient failures (database locked or unreachable) are retried, for as long as it takes;
the records waiting meanwhile are bounded (RECORDER_QUEUE_LIMIT), beyond which new ones are
dropped and counted; a place is kept for the end of every run whose start was queued, so that
no stored row stays `running` because its end found the queue full. A batch the database
refuses for good is written again one record at a time, so a bad record costs only itself: it
is made storable (storage/storable.py) or, failing that, dropped, counted and logged.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

from servicescheduler.logs import get_logger
from servicescheduler.metrics import Metrics
from servicescheduler.storage.db import Database
from servicescheduler.storage.db_errors import is_transient_db_error
from servicescheduler.storage.history import store_history
from servicescheduler.storage.records import AuditRecord, RunRecord
from servicescheduler.storage.storable import storable
from servicescheduler.support.backoff import backoff_ceiling
from servicescheduler.vocabulary import RunOutcome

log = get_logger(__name__)

BATCH_WINDOW_SECONDS = 0.05
BATCH_LIMIT = 500
RETRY_CAP_SECONDS = 30.0
Record = RunRecord | AuditRecord


class _Flush:
    """Queued by flush(): write the current batch without waiting out the window."""


_FLUSH = _Flush()
_STOP = None


class _Stopped(Exception):
    """The recorder was stopped while retrying; `remaining` records were not stored."""

    def __init__(self, remaining: int) -> None:
        super().__init__(remaining)
        self.remaining = remaining


def _short(exc: BaseException) -> str:
    """The exception's type and first line, cut short: SQLAlchemy adds the SQL and its
    parameters (task data) on the following lines, which do not belong in a log line."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def _describe(item: Record) -> dict[str, Any]:
    if isinstance(item, RunRecord):
        return {"record": "run", "task": item.task, "run_id": item.run_id, "outcome": item.outcome}
    return {"record": "audit", "audit_action": item.action, "audit_target": item.target}


class RunRecorder:
    """Stores RunRecords (and AuditRecords) from a dedicated thread; retries while the database is down."""

    def __init__(
        self, database: Database, metrics: Metrics | None = None, queue_limit: int = 10_000, retry_seconds: float = 1.0
    ) -> None:
        self.database = database
        self._metrics = metrics or Metrics()
        self._limit = queue_limit
        self._overflowing = False
        self._dropped_while_full = 0
        # Runs whose start was queued and whose end was not yet: a place is kept for each end.
        self._awaiting_end: set[str] = set()
        self._queue: queue.Queue[Record | _Flush | None] = queue.Queue()
        self._retry_seconds = retry_seconds
        self._idle = threading.Condition()
        self._pending = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="run-recorder", daemon=True)

    def start(self) -> None:
        """Starts the writer thread."""
        self._thread.start()

    def record(self, item: Record) -> None:
        """Queues a run or an audit entry for storage; returns at once. Past the queue limit the
        record is dropped and counted instead.

        The end of a run whose start was queued is never dropped: each start accepted keeps a
        place for its end, so a full queue refuses new starts (and other records) first, and
        never leaves a stored row `running` until the next restart."""
        with self._idle:
            kept = self._takes_kept_place(item)
            if not kept and not self._fits(item):
                self._drop_on_full(item)
                return
            if self._overflowing and not kept:
                self._overflowing = False
                log.warning(
                    "run_history_queue_accepting",
                    waiting=self._pending,
                    limit=self._limit,
                    dropped=self._dropped_while_full,
                )
            self._pending += 1
            self._metrics.history_queue_depth.set(self._pending)
        self._queue.put(item)

    def _takes_kept_place(self, item: Record) -> bool:
        """True for the end of a run whose start was queued: it takes the place its start kept
        (caller holds _idle)."""
        if isinstance(item, RunRecord) and item.outcome != RunOutcome.RUNNING and item.run_id in self._awaiting_end:
            self._awaiting_end.discard(item.run_id)
            return True
        return False

    def _fits(self, item: Record) -> bool:
        """Whether `item` fits in the queue (caller holds _idle). Places in use: the records
        waiting, plus one kept for the end of each run whose start was queued."""
        start = isinstance(item, RunRecord) and item.outcome == RunOutcome.RUNNING
        if self._pending + len(self._awaiting_end) + (2 if start else 1) > self._limit:
            return False
        if isinstance(item, RunRecord) and start:
            self._awaiting_end.add(item.run_id)
        return True

    def _drop_on_full(self, item: Record) -> None:
        """Counts a record refused by the full queue; logs once per overflow (caller holds _idle)."""
        self._metrics.history_dropped.labels("queue_full").inc()
        self._dropped_while_full += 1
        if not self._overflowing:
            self._overflowing, self._dropped_while_full = True, 1
            log.error(
                "run_history_queue_full",
                limit=self._limit,
                first_dropped=_describe(item),
                hint="the database has not accepted writes for a while; new records are dropped "
                "(run_history_dropped_total) until it does",
            )

    def flush(self, timeout: float) -> bool:
        """Writes what is queued now (no batching wait) and waits until it is stored;
        returns False on timeout."""
        with self._idle:
            if self._pending == 0:
                return True
        self._queue.put(_FLUSH)
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def stop(self, timeout: float) -> None:
        """Stores what is queued (up to `timeout`) and stops the thread."""
        if not self._thread.is_alive():
            return
        self.flush(timeout)
        self._stop.set()
        self._queue.put(_STOP)
        self._thread.join(timeout=max(0.1, timeout))

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            if isinstance(first, _Flush):
                continue
            self._store_until_done(self._collect(first))

    def _collect(self, first: Record) -> list[Record]:
        """`first` plus what arrives within the batching window (or until a flush or stop)."""
        batch = [first]
        # Wait a moment before writing: runs come due together (on whole seconds), and an
        # ORM flush right then holds the GIL against the runs still starting.
        window_ends = time.monotonic() + BATCH_WINDOW_SECONDS
        while len(batch) < BATCH_LIMIT:
            try:
                item = self._queue.get(timeout=max(0.0, window_ends - time.monotonic()))
            except queue.Empty:
                break
            if item is _STOP:
                self._queue.put(_STOP)
                break
            if isinstance(item, _Flush):
                break
            batch.append(item)
        return batch

    def _store_until_done(self, batch: list[Record]) -> None:
        try:
            refused = self._attempt(batch)
            if refused is not None:
                log.warning(
                    "run_history_batch_refused",
                    records=len(batch),
                    error=_short(refused),
                    action="storing the records one by one",
                )
                self._isolate(batch)
        except _Stopped as stopped:
            self._metrics.history_dropped.labels("shutdown").inc(stopped.remaining)
            log.error("run_history_dropped_at_shutdown", records=stopped.remaining)
        except Exception as exc:  # a bug here must not kill the thread and with it all history
            self._metrics.history_dropped.labels("refused").inc(len(batch))
            log.critical("run_history_recorder_failed", records=len(batch), error=_short(exc), exc_info=True)
        finally:
            with self._idle:
                self._pending -= len(batch)
                self._metrics.history_queue_depth.set(self._pending)
                self._idle.notify_all()

    def _attempt(self, batch: list[Record]) -> Exception | None:
        """Stores `batch`, retrying transient failures until it is stored or the recorder stops
        (raises _Stopped). Returns the failure when the database refuses it for good."""
        attempt = 0
        while True:
            try:
                self._store(batch)
                return None
            except Exception as exc:
                if not is_transient_db_error(exc):
                    return exc
                attempt += 1
                log.error(
                    "run_history_write_failed",
                    records=len(batch),
                    attempt=attempt,
                    error=_short(exc),
                    action="retrying",
                )
                if self._stop.wait(backoff_ceiling(attempt, base=self._retry_seconds, cap=RETRY_CAP_SECONDS)):
                    raise _Stopped(len(batch)) from None

    def _isolate(self, batch: list[Record]) -> None:
        """Stores each record of a refused batch on its own: only the culprit is affected."""
        for index, item in enumerate(batch):
            try:
                self._store_alone(item)
            except _Stopped:
                raise _Stopped(len(batch) - index) from None

    def _store_alone(self, item: Record) -> None:
        refused = self._attempt([item])
        if refused is None:
            return
        cleaned = storable(item)
        if cleaned != item:
            still_refused = self._attempt([cleaned])
            if still_refused is None:
                log.warning(
                    "run_history_record_cleaned",
                    error=_short(refused),
                    **_describe(item),
                    action="stored without NUL bytes and lone surrogates, cut to the column sizes",
                )
                return
            refused = still_refused
        self._metrics.history_dropped.labels("refused").inc()
        log.error("run_history_record_refused", error=_short(refused), **_describe(item), action="dropped")

    def _store(self, batch: list[Record]) -> None:
        runs = [item for item in batch if isinstance(item, RunRecord)]
        audits = [item for item in batch if isinstance(item, AuditRecord)]
        with self.database.session() as session:
            store_history(session, runs, audits)
