"""`cleanup` task: retention. Deletes old run history, finished notifications, events, dead
letters, reports and audit entries in bounded batches (one short transaction each, so a run
never holds a long lock), round-robin over the tables until every expired row is gone or the
run's time budget is spent: a backlog is worked off instead of outgrowing a fixed row budget."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select

from servicescheduler.builtin.registry import builtin_tasks
from servicescheduler.logs import get_logger
from servicescheduler.scheduling import TaskContext, every
from servicescheduler.settings import Settings
from servicescheduler.storage.db import Database
from servicescheduler.storage.models import AuditEntry, DeadLetter, Event, Notification, Report, TaskRun
from servicescheduler.storage.table_names import logical_name
from servicescheduler.support.clock import utcnow

log = get_logger(__name__)

TASK_TIMEOUT_SECONDS = 240  # RETENTION_TIME_BUDGET_SECONDS is capped below this


@dataclass
class PurgeResult:
    """What one cleanup pass did."""

    deleted: dict[str, int] = field(default_factory=dict)
    complete: bool = True  # False: the time budget ran out with expired rows left
    seconds: float = 0.0


def _rules(settings: Settings) -> list[tuple[Any, Any, Any]]:
    """(model, primary key column, condition) for every retention rule."""
    now = utcnow()
    runs_before = now - timedelta(days=settings.retention_runs_days)
    notes_before = now - timedelta(days=settings.retention_notifications_days)
    events_before = now - timedelta(days=settings.retention_events_days)
    audit_before = now - timedelta(days=settings.retention_audit_days)
    return [
        (TaskRun, TaskRun.run_id, TaskRun.started_at < runs_before),
        (
            Notification,
            Notification.id,
            Notification.status.in_(("sent", "dead")) & (Notification.updated_at < notes_before),
        ),
        (Event, Event.id, Event.received_at < events_before),
        (DeadLetter, DeadLetter.id, DeadLetter.created_at < events_before),
        (Report, Report.id, Report.created_at < runs_before),
        (AuditEntry, AuditEntry.id, AuditEntry.at < audit_before),
    ]


def _delete_batch(database: Database, model: Any, key: Any, condition: Any, limit: int) -> int:
    """Deletes up to `limit` expired rows in one statement and transaction; returns how many."""
    doomed = select(key).where(condition).limit(limit).scalar_subquery()
    with database.session() as session:
        result = session.execute(delete(model).where(key.in_(doomed)), execution_options={"synchronize_session": False})
        return int(result.rowcount)  # type: ignore[attr-defined]


def purge(*, database: Database, settings: Settings) -> PurgeResult:
    """Deletes expired rows, `retention_batch_size` per transaction, one batch per table in turn,
    until none is left or `retention_time_budget_seconds` has passed (each table gets at least one)."""
    started = time.monotonic()
    deadline = started + settings.retention_time_budget_seconds
    rules = _rules(settings)
    result = PurgeResult(deleted={logical_name(model.__tablename__): 0 for model, _, _ in rules})
    pending = list(rules)
    first_pass = True  # every table gets one batch per run, whatever the budget
    while pending and (first_pass or time.monotonic() < deadline):
        for rule in list(pending):
            if not first_pass and time.monotonic() >= deadline:
                break
            model, key, condition = rule
            count = _delete_batch(database, model, key, condition, settings.retention_batch_size)
            result.deleted[logical_name(model.__tablename__)] += count
            if count < settings.retention_batch_size:
                pending.remove(rule)
        first_pass = False
    result.complete = not pending
    result.seconds = round(time.monotonic() - started, 3)
    return result


@builtin_tasks.task(
    "cleanup",
    trigger=every(5).minutes,
    timeout=TASK_TIMEOUT_SECONDS,
    description="Deletes run history, notifications, events, reports and audit entries past their retention",
)
def cleanup(ctx: TaskContext) -> None:
    """Task entry: one retention pass; logs what it deleted (a warning when it ran out of time)."""
    result = purge(database=ctx.database, settings=ctx.settings)
    log.info("cleanup_pass", run_id=ctx.run_id, seconds=result.seconds, complete=result.complete, **result.deleted)
    if not result.complete:
        log.warning(
            "cleanup_budget_exhausted",
            run_id=ctx.run_id,
            seconds=result.seconds,
            budget_seconds=ctx.settings.retention_time_budget_seconds,
            hint="expired rows are left for the next run; raise RETENTION_BATCH_SIZE or "
            "RETENTION_TIME_BUDGET_SECONDS if this repeats",
        )
