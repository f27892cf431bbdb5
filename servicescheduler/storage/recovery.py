"""Start-up recovery of run history: runs a dead process left `running` become `interrupted`.

Every run's start is stored with outcome `running` and updated when it ends. At start-up, before
this process has started any run, every row still `running` belongs to a process that died
(kill -9, OOM, power loss) or stopped without recording it: it is closed as `interrupted`.
In a cluster, rows of replicas that are still alive are spared: their own replica finishes
them, or the lease reaper interrupts them when that replica dies (scheduling/coordination.py).
"""

from __future__ import annotations

from sqlalchemy import or_, select

from servicescheduler.storage.db import Database
from servicescheduler.storage.history import record_from_row
from servicescheduler.storage.models import TaskRun
from servicescheduler.storage.records import RunRecord
from servicescheduler.support.clock import iso, to_datetime, to_epoch, utcnow
from servicescheduler.vocabulary import RunOutcome


def interrupt_orphans(database: Database, spare: frozenset[str] = frozenset()) -> list[RunRecord]:
    """Marks every `running` row `interrupted`, except those of the live replicas in `spare`;
    returns the runs changed (as now stored)."""
    found_at = utcnow()
    reason = f"the process running it ended before the run did (found at start-up, {iso(found_at)})"
    with database.session() as session:
        query = select(TaskRun).where(TaskRun.outcome == RunOutcome.RUNNING)
        if spare:
            query = query.where(or_(TaskRun.replica.is_(None), TaskRun.replica.not_in(sorted(spare))))
        rows = list(session.scalars(query))
        for row in rows:
            # finished_at stays empty: when the process died is unknown, and a guessed end
            # would show as a duration the run never had.
            row.outcome, row.error = RunOutcome.INTERRUPTED, reason
        return [record_from_row(row) for row in rows]


def recorded_slots(database: Database, task: str, slots: list[float]) -> set[float]:
    """Which of `task`'s due times (epoch seconds) already have a row, rounded to the millisecond."""
    if not slots:
        return set()
    first, last = to_datetime(min(slots) - 0.001), to_datetime(max(slots) + 0.001)
    query = select(TaskRun.scheduled_for).where(TaskRun.task == task, TaskRun.scheduled_for.between(first, last))
    with database.read_session() as session:
        return {round(epoch, 3) for epoch in map(to_epoch, session.scalars(query)) if epoch is not None}
