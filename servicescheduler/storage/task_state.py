"""Persisted task state: the operator's intent (enabled, interval override) and the grid anchor,
which survive restarts. Also holds the consumer's enabled flag (a row of its own)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from servicescheduler.storage.audit import add_audit
from servicescheduler.storage.claims import insert_ignoring_conflicts
from servicescheduler.storage.control import bump_version, seed_states
from servicescheduler.storage.db import Database
from servicescheduler.storage.history import last_runs, outcome_counts
from servicescheduler.storage.models import TaskRun, TaskState
from servicescheduler.storage.records import AuditRecord, RunRecord
from servicescheduler.support.clock import to_epoch, utcnow
from servicescheduler.vocabulary import RunOutcome


@dataclass
class SavedTaskState:
    """What the database remembers of one task."""

    enabled: bool
    interval_seconds: int | None
    last_run_scheduled_for: float | None
    last_success_at: float | None
    stats: Counter[RunOutcome] = field(default_factory=Counter)
    last_run: RunRecord | None = None
    cron_override: dict[str, Any] | None = None


@dataclass(frozen=True)
class StoredRetry:
    """A task's persisted pending retry: the next attempt of the failed run `after_run`."""

    attempt: int
    due: float  # epoch seconds
    after_run: str


def _stored_retry(row: TaskState) -> StoredRetry | None:
    due = to_epoch(row.retry_due)
    if row.retry_attempt is None or due is None:
        return None
    return StoredRetry(row.retry_attempt, due, row.retry_after_run or "")


def stored_retries(database: Database) -> dict[str, tuple[StoredRetry, str | None]]:
    """{task: (its pending retry, the replica that ran the failed attempt)} for every task with
    one: a retry planned by a replica that died is re-planned by another (ClusterSync)."""
    query = (
        select(TaskState, TaskRun.replica)
        .outerjoin(TaskRun, TaskRun.run_id == TaskState.retry_after_run)
        .where(TaskState.retry_due.is_not(None))
    )
    found: dict[str, tuple[StoredRetry, str | None]] = {}
    with database.read_session() as session:
        for row, replica in session.execute(query):
            stored = _stored_retry(row)
            if stored is not None:
                found[row.name] = (stored, replica)
    return found


class TaskStateStore:
    """Reads and writes `task_state` rows; every change is audited in the same transaction."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def load(self) -> dict[str, SavedTaskState]:
        """Every known task's saved state, with run counts by outcome and its last run."""
        with self.database.read_session() as session:
            states = {
                row.name: SavedTaskState(
                    row.enabled,
                    row.interval_seconds,
                    to_epoch(row.last_run_scheduled_for),
                    to_epoch(row.last_success_at),
                    cron_override=row.cron_override,
                )
                for row in session.scalars(select(TaskState))
            }
            for task, counts in outcome_counts(session).items():
                if task in states:
                    states[task].stats.update(counts)
            for task, run in last_runs(session).items():
                if task in states:
                    states[task].last_run = run
        return states

    def create(self, states: dict[str, tuple[bool, int | None]]) -> None:
        """Inserts first-seen tasks' states ({name: (enabled, interval_seconds)}) in one transaction."""
        if not states:
            return
        now = utcnow()
        with self.database.session() as session:
            for name, (enabled, interval) in states.items():
                # Replicas starting together may both see the row missing: the first insert wins.
                insert_ignoring_conflicts(
                    session,
                    TaskState,
                    {"name": name, "enabled": enabled, "interval_seconds": interval, "updated_at": now, "version": 0},
                    ["name"],
                )

    def seed(self, initial: dict[str, tuple[bool, int | None, float | None]], now: float) -> None:
        """Cluster: creates missing rows ({name: (enabled, interval, grid period)}) and gives
        tasks that never ran a grid origin one period before the current whole second, so the
        first replica's start-up slot is every replica's (storage/control.py)."""
        anchors = {name: float(int(now)) - period for name, (_, _, period) in initial.items() if period}
        with self.database.session() as session:
            seed_states(
                session, {name: (enabled, interval) for name, (enabled, interval, _) in initial.items()}, anchors
            )

    def change(
        self, name: str, *, actor: str, action: str, detail: dict[str, Any] | None = None, **values: object
    ) -> int:
        """Updates columns of a task's state and records the change in the audit log, atomically.
        Returns the change's control version (other replicas apply it: storage/control.py)."""
        with self.database.session() as session:
            row = session.get(TaskState, name)
            if row is None:
                row = TaskState(name=name, enabled=True, updated_at=utcnow())
                session.add(row)
            for key, value in values.items():
                setattr(row, key, value)
            row.updated_at = utcnow()
            row.version = bump_version(session)
            add_audit(session, AuditRecord(actor=actor, action=action, target=name, detail=detail))
            return row.version
