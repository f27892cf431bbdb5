"""Run history: storing finished runs (with their effect on task state) and reading it back."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from servicescheduler.storage.audit import add_audit
from servicescheduler.storage.db import Database
from servicescheduler.storage.models import TaskRun, TaskState
from servicescheduler.storage.records import AuditRecord, RunRecord
from servicescheduler.support.clock import to_datetime, to_epoch
from servicescheduler.vocabulary import RunCause, RunOutcome


def store_history(session: Session, runs: Iterable[RunRecord], audits: Iterable[AuditRecord]) -> None:
    """Writes runs (idempotent on run_id: a later record of a run updates its row) and audit
    entries; advances each task's anchor/success."""
    latest = {run.run_id: run for run in runs}  # a run's start and end in one batch: one row
    # One query for the rows that exist (runs whose start was stored earlier): a merge() per run
    # would issue a SELECT each, and every run now has two records (start and end).
    query = select(TaskRun).where(TaskRun.run_id.in_(padded_keys(list(latest))))
    existing = {row.run_id: row for row in session.scalars(query)} if latest else {}
    for run in latest.values():
        row = existing.get(run.run_id)
        if row is None:
            row = TaskRun(run_id=run.run_id)
            session.add(row)
        _fill(row, run)
    for run in latest.values():
        _advance_state(session, run)  # monotonic: the latest record of a run is the one that counts
    for audit in audits:
        add_audit(session, audit)


def padded_keys(keys: list[str]) -> list[str]:
    """`keys` repeated at the end up to the next power of two: an IN list's SQL text (and prepared
    statement, which SQLite keeps per connection) depends on its length, so a batch of each size
    1..N would be a statement of its own; powers of two make it at most log2(N) + 1."""
    if not keys:
        return keys
    size = 1 << (len(keys) - 1).bit_length()
    return keys + keys[-1:] * (size - len(keys))


def _fill(row: TaskRun, run: RunRecord) -> None:
    started = to_datetime(run.started_at)
    assert started is not None
    row.task, row.trigger, row.outcome, row.error = run.task, run.cause, run.outcome or RunOutcome.ERROR, run.error
    row.scheduled_for, row.started_at = to_datetime(run.scheduled_for), started
    row.finished_at, row.duration_ms = to_datetime(run.finished_at), run.duration_ms
    row.replica, row.attempt = run.replica, run.attempt


def _advance_state(session: Session, run: RunRecord) -> None:
    state = session.get(TaskState, run.task)
    if state is None:
        return
    # Only a run that ended moves the grid anchor: one cut short is due again after a restart. A
    # retry's due time is off the grid: as an anchor it would shift every replica's later slots.
    if run.scheduled_for is not None and run.cause != RunCause.RETRY and (run.outcome is None or run.outcome.ran):
        anchor = to_datetime(run.scheduled_for)
        if anchor is not None and (state.last_run_scheduled_for is None or anchor > state.last_run_scheduled_for):
            state.last_run_scheduled_for = anchor
    if run.outcome is RunOutcome.SUCCESS:
        finished = to_datetime(run.finished_at)
        if finished is not None and (state.last_success_at is None or finished > state.last_success_at):
            state.last_success_at = finished


def record_from_row(row: TaskRun) -> RunRecord:
    """The RunRecord a stored row describes."""
    started = to_epoch(row.started_at)
    assert started is not None
    return RunRecord(
        row.run_id,
        row.task,
        row.trigger,
        to_epoch(row.scheduled_for),
        started,
        to_epoch(row.finished_at),
        RunOutcome(row.outcome),
        row.error,
        row.replica,
        row.attempt,
    )


def run_rows(
    database: Database, task: str, limit: int, outcome: RunOutcome | None, offset: int = 0
) -> list[dict[str, Any]]:
    """A task's history, newest first, as API dicts (`offset` newest ones skipped)."""
    query = select(TaskRun).where(TaskRun.task == task)
    if outcome is not None:
        query = query.where(TaskRun.outcome == outcome)
    query = query.order_by(TaskRun.started_at.desc()).offset(offset).limit(limit)
    with database.read_session() as session:
        return [record_from_row(row).as_dict() for row in session.scalars(query)]


def has_runs(database: Database, task: str) -> bool:
    """Whether any run of `task` is stored (a deleted runtime task's history stays; index on task)."""
    with database.read_session() as session:
        return session.scalar(select(TaskRun.run_id).where(TaskRun.task == task).limit(1)) is not None


def outcome_counts(session: Session) -> dict[str, Counter[RunOutcome]]:
    """{task: Counter(outcome → runs)} over the whole history."""
    counts: dict[str, Counter[RunOutcome]] = {}
    rows = session.execute(select(TaskRun.task, TaskRun.outcome, func.count()).group_by(TaskRun.task, TaskRun.outcome))
    for task, outcome, count in rows:
        counts.setdefault(task, Counter())[RunOutcome(outcome)] = count
    return counts


def last_runs(session: Session) -> dict[str, RunRecord]:
    """{task: its most recently started run}."""
    latest = select(TaskRun.task, func.max(TaskRun.started_at).label("started")).group_by(TaskRun.task).subquery()
    rows = session.scalars(
        select(TaskRun).join(latest, (TaskRun.task == latest.c.task) & (TaskRun.started_at == latest.c.started))
    )
    return {row.task: record_from_row(row) for row in rows}
