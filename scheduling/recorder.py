"""RunRecorder: writes run history and audit entries from its own thread, in batches.

Neither the loop nor a worker waits on the database: they queue records and go on. Rows are
built by storage (storage/history.py); this module only batches, retries and reports idleness.
"""

from __future__ import annotations

import queue
import threading
import time

from logs import get_logger
from storage.db import Database
from storage.history import store_history
from storage.records import AuditRecord, RunRecord
from support.backoff import backoff_ceiling

log = get_logger(__name__)

BATCH_WINDOW_SECONDS = 0.1
BATCH_LIMIT = 500
RETRY_CAP_SECONDS = 30.0
Record = RunRecord | AuditRecord


class _Flush:
    """Queued by flush(): write the current batch without waiting out the window."""


_FLUSH = _Flush()
_STOP = None


class RunRecorder:
    """Stores RunRecords (and AuditRecords) from a dedicated thread; retries while the database is down."""

    def __init__(self, database: Database, retry_seconds: float = 1.0) -> None:
        self.database = database
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
        """Queues a finished run or an audit entry for storage; returns at once."""
        with self._idle:
            self._pending += 1
        self._queue.put(item)

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
        attempt = 0
        while True:
            try:
                self._store(batch)
                break
            except Exception as exc:
                attempt += 1
                log.error("run_history_write_failed", runs=len(batch), attempt=attempt, error=str(exc))
                delay = backoff_ceiling(attempt, base=self._retry_seconds, cap=RETRY_CAP_SECONDS)
                if self._stop.wait(delay):
                    log.error("run_history_dropped_at_shutdown", runs=len(batch))
                    break
        with self._idle:
            self._pending -= len(batch)
            self._idle.notify_all()

    def _store(self, batch: list[Record]) -> None:
        runs = [item for item in batch if isinstance(item, RunRecord)]
        audits = [item for item in batch if isinstance(item, AuditRecord)]
        with self.database.session() as session:
            store_history(session, runs, audits)
