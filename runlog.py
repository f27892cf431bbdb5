"""Run history and persisted task state.

`RunRecorder` writes finished runs from its own thread (one writer, batched transactions), so
neither the loop nor a worker waits on the database. `TaskStateStore` reads and writes the
operator's intent (enabled, interval override) and the grid anchor that survive restarts.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlalchemy import func, select

from logs import get_logger
from storage.db import Database, utcnow
from storage.models import AuditEntry, TaskRun, TaskState

log = get_logger(__name__)

BATCH_WINDOW_SECONDS = 0.1
_FLUSH = object()  # queued by flush(): write the current batch without waiting out the window
OUTCOMES = ("success", "error", "timeout", "skipped", "missed")
STAT_NAMES = {"success": "successes", "error": "failures", "timeout": "timeouts",
              "skipped": "skipped", "missed": "missed"}


def to_datetime(epoch: float | None) -> datetime | None:
    """Epoch seconds as an aware UTC datetime (None stays None)."""
    return None if epoch is None else datetime.fromtimestamp(epoch, timezone.utc)


@dataclass
class RunRecord:
    """One run as it is kept in memory, logged and stored."""

    run_id: str
    task: str
    trigger: str
    scheduled_for: float | None
    started_at: float
    finished_at: float | None = None
    outcome: str | None = None
    error: str | None = None

    @property
    def duration_ms(self) -> float | None:
        """Wall time of the run in milliseconds, once finished."""
        if self.finished_at is None:
            return None
        return round((self.finished_at - self.started_at) * 1000, 3)

    def as_dict(self) -> dict:
        """JSON-ready view used by the API."""
        return {
            "run_id": self.run_id,
            "trigger": self.trigger,
            "scheduled_for": _iso(self.scheduled_for),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "duration_ms": self.duration_ms,
            "outcome": self.outcome,
            "error": self.error,
        }


def _iso(epoch: float | None) -> str | None:
    value = to_datetime(epoch)
    return None if value is None else value.isoformat().replace("+00:00", "Z")


@dataclass
class PersistedState:
    """What the database remembers of one task."""

    enabled: bool
    interval_seconds: int | None
    last_run_scheduled_for: float | None
    last_success_at: float | None
    stats: Counter = field(default_factory=Counter)
    last_run: RunRecord | None = None


class TaskStateStore:
    """Reads and writes `task_state` rows and audit entries."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def load(self) -> dict[str, PersistedState]:
        """Every known task's persisted state, with run counts by outcome and its last run."""
        states: dict[str, PersistedState] = {}
        with self.database.read_session() as session:
            for row in session.scalars(select(TaskState)):
                states[row.name] = PersistedState(
                    row.enabled, row.interval_seconds, _epoch(row.last_run_scheduled_for),
                    _epoch(row.last_success_at))
            counts = session.execute(
                select(TaskRun.task, TaskRun.outcome, func.count()).group_by(TaskRun.task, TaskRun.outcome))
            for task, outcome, count in counts:
                if task in states:
                    states[task].stats[outcome] = count
            latest = (select(TaskRun.task, func.max(TaskRun.started_at).label("started"))
                      .group_by(TaskRun.task).subquery())
            last_runs = session.scalars(select(TaskRun).join(
                latest, (TaskRun.task == latest.c.task) & (TaskRun.started_at == latest.c.started)))
            for run in last_runs:
                if run.task in states:
                    states[run.task].last_run = _record_from_row(run)
        return states

    def create(self, states: dict[str, tuple[bool, int | None]]) -> None:
        """Inserts first-seen tasks' states ({name: (enabled, interval_seconds)}) in one transaction."""
        if not states:
            return
        now = utcnow()
        with self.database.session() as session:
            session.add_all([TaskState(name=name, enabled=enabled, interval_seconds=interval, updated_at=now)
                             for name, (enabled, interval) in states.items()])

    def change(self, name: str, *, actor: str, action: str, detail: dict | None = None,
               **values: object) -> None:
        """Updates columns of a task's state and records the change in the audit log, atomically."""
        with self.database.session() as session:
            row = session.get(TaskState, name)
            if row is None:
                row = TaskState(name=name, enabled=True, updated_at=utcnow())
                session.add(row)
            for key, value in values.items():
                setattr(row, key, value)
            row.updated_at = utcnow()
            session.add(AuditEntry(at=utcnow(), actor=actor, action=action, target=name, detail=detail))


def _epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _record_from_row(row: TaskRun) -> RunRecord:
    return RunRecord(row.run_id, row.task, row.trigger, _epoch(row.scheduled_for),
                     row.started_at.timestamp(), _epoch(row.finished_at), row.outcome, row.error)


def run_rows(database: Database, task: str, limit: int, outcome: str | None, offset: int = 0) -> list[dict]:
    """A task's history, newest first, as API dicts (`offset` newest ones skipped)."""
    query = select(TaskRun).where(TaskRun.task == task)
    if outcome is not None:
        query = query.where(TaskRun.outcome == outcome)
    query = query.order_by(TaskRun.started_at.desc()).offset(offset).limit(limit)
    with database.read_session() as session:
        return [_record_from_row(row).as_dict() for row in session.scalars(query)]


class RunRecorder:
    """Stores RunRecords from a dedicated thread, in batches; retries while the database is down."""

    def __init__(self, database: Database, retry_seconds: float = 1.0) -> None:
        self.database = database
        self._queue: queue.Queue = queue.Queue()
        self._retry_seconds = retry_seconds
        self._idle = threading.Condition()
        self._pending = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="run-recorder", daemon=True)

    def start(self) -> None:
        """Starts the writer thread."""
        self._thread.start()

    def record(self, run: RunRecord | AuditEntry) -> None:
        """Queues a finished run (or an audit entry) for storage; returns at once."""
        with self._idle:
            self._pending += 1
        self._queue.put(run)

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
        self._queue.put(None)
        self._thread.join(timeout=max(0.1, timeout))

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            if first is _FLUSH:
                continue
            batch = [first]
            # Wait a moment before writing: runs come due together (on whole seconds), and an
            # ORM flush right then holds the GIL against the runs still starting.
            window_ends = time.monotonic() + BATCH_WINDOW_SECONDS
            while len(batch) < 500:
                try:
                    item = self._queue.get(timeout=max(0.0, window_ends - time.monotonic()))
                except queue.Empty:
                    break
                if item is None or item is _FLUSH:
                    if item is None:
                        self._queue.put(None)
                    break
                batch.append(item)
            self._store_until_done(batch)

    def _store_until_done(self, batch: list) -> None:
        attempt = 0
        while True:
            try:
                self._store(batch)
                break
            except Exception as exc:
                attempt += 1
                log.error("run_history_write_failed", runs=len(batch), attempt=attempt, error=str(exc))
                if self._stop.wait(min(30.0, self._retry_seconds * 2 ** min(attempt, 5))):
                    log.error("run_history_dropped_at_shutdown", runs=len(batch))
                    break
        with self._idle:
            self._pending -= len(batch)
            self._idle.notify_all()

    def _store(self, batch: list) -> None:
        with self.database.session() as session:
            for run in batch:
                if isinstance(run, AuditEntry):
                    session.merge(run)
                    continue
                session.merge(TaskRun(
                    run_id=run.run_id, task=run.task, trigger=run.trigger,
                    scheduled_for=to_datetime(run.scheduled_for), started_at=to_datetime(run.started_at),
                    finished_at=to_datetime(run.finished_at), duration_ms=run.duration_ms,
                    outcome=run.outcome or "error", error=run.error))
                self._advance_state(session, run)

    @staticmethod
    def _advance_state(session, run: RunRecord) -> None:
        state = session.get(TaskState, run.task)
        if state is None:
            return
        if run.scheduled_for is not None and run.outcome not in ("skipped", "missed"):
            anchor = to_datetime(run.scheduled_for)
            if state.last_run_scheduled_for is None or anchor > state.last_run_scheduled_for:
                state.last_run_scheduled_for = anchor
        if run.outcome == "success":
            finished = to_datetime(run.finished_at)
            if state.last_success_at is None or finished > state.last_success_at:
                state.last_success_at = finished
