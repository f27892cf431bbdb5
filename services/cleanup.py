"""`cleanup` task: retention. Deletes old run history, finished notifications, events, dead
letters and reports in bounded batches, so one run never holds a long lock."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select

from logs import get_logger
from scheduling import TaskContext, every, tasks
from settings import Settings
from storage.db import Database
from storage.models import DeadLetter, Event, Notification, Report, TaskRun
from support.clock import utcnow

log = get_logger(__name__)

MAX_BATCHES_PER_TABLE = 100


def _rules(settings: Settings) -> list[tuple[type, object, object]]:
    """(model, primary key column, condition) for every retention rule."""
    now = utcnow()
    runs_before = now - timedelta(days=settings.retention_runs_days)
    notes_before = now - timedelta(days=settings.retention_notifications_days)
    events_before = now - timedelta(days=settings.retention_events_days)
    return [
        (TaskRun, TaskRun.run_id, TaskRun.started_at < runs_before),
        (Notification, Notification.id,
         Notification.status.in_(("sent", "dead")) & (Notification.updated_at < notes_before)),
        (Event, Event.id, Event.received_at < events_before),
        (DeadLetter, DeadLetter.id, DeadLetter.created_at < events_before),
        (Report, Report.id, Report.created_at < runs_before),
    ]


def purge(*, database: Database, settings: Settings) -> dict[str, int]:
    """Deletes expired rows, `retention_batch_size` per transaction; returns deleted counts by table."""
    deleted: dict[str, int] = {}
    for model, key, condition in _rules(settings):
        total = 0
        for _ in range(MAX_BATCHES_PER_TABLE):
            with database.session() as session:
                ids = list(session.scalars(select(key).where(condition).limit(settings.retention_batch_size)))
                if ids:
                    session.execute(delete(model).where(key.in_(ids)))
            total += len(ids)
            if len(ids) < settings.retention_batch_size:
                break
        deleted[model.__tablename__] = total
    return deleted


@tasks.task("cleanup", trigger=every(5).minutes, timeout=240,
            description="Deletes run history, notifications, events and reports past their retention")
def cleanup(ctx: TaskContext) -> None:
    """Task entry: one retention pass; logs what it deleted."""
    deleted = purge(database=ctx.database, settings=ctx.settings)
    log.info("cleanup_pass", run_id=ctx.run_id, **deleted)
