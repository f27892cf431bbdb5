"""`report` task: aggregates the last window (runs by task and outcome, notifications by status,
events by type) into the `reports` table; `GET /reports/latest` shows the newest."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from servicescheduler.builtin.registry import builtin_tasks
from servicescheduler.logs import get_logger
from servicescheduler.scheduling import TaskContext, every
from servicescheduler.storage.db import Database
from servicescheduler.storage.models import Event, Notification, Report, TaskRun
from servicescheduler.support.clock import iso, utcnow

log = get_logger(__name__)


def _nested_counts(rows: Iterable[tuple[str, str, int]]) -> dict[str, dict[str, int]]:
    result: dict[str, dict[str, int]] = {}
    for outer, inner, count in rows:
        result.setdefault(outer, {})[inner] = count
    return result


def build_report(*, database: Database, window_end: datetime, window: timedelta) -> Report:
    """Aggregates [window_end - window, window_end) and stores it; returns the stored row."""
    start = window_end - window
    with database.session() as session:
        runs = session.execute(
            select(TaskRun.task, TaskRun.outcome, func.count())
            .where(TaskRun.started_at >= start, TaskRun.started_at < window_end)
            .group_by(TaskRun.task, TaskRun.outcome)
        )
        notes = session.execute(
            select(Notification.status, func.count())
            .where(Notification.updated_at >= start, Notification.updated_at < window_end)
            .group_by(Notification.status)
        )
        events = session.execute(
            select(Event.type, func.count())
            .where(Event.received_at >= start, Event.received_at < window_end)
            .group_by(Event.type)
        )
        body = {"runs": _nested_counts(runs), "notifications": dict(notes.all()), "events": dict(events.all())}
        report = Report(created_at=utcnow(), window_start=start, window_end=window_end, body=body)
        session.add(report)
    return report


def latest_report(database: Database) -> dict[str, Any] | None:
    """The newest report as a dict, or None when none exists."""
    with database.read_session() as session:
        row = session.scalars(select(Report).order_by(Report.created_at.desc(), Report.id.desc()).limit(1)).first()
        if row is None:
            return None
        return {
            "id": row.id,
            "created_at": iso(row.created_at),
            "window_start": iso(row.window_start),
            "window_end": iso(row.window_end),
            **row.body,
        }


@builtin_tasks.task(
    "report",
    trigger=every(15).minutes,
    timeout=300,
    description="Aggregates runs, notifications and events of the last window into reports",
)
def report(ctx: TaskContext) -> None:
    """Task entry: one report over the configured window."""
    window = timedelta(minutes=ctx.settings.report_window_minutes)
    row = build_report(database=ctx.database, window_end=utcnow(), window=window)
    log.info("report_written", run_id=ctx.run_id, report_id=row.id)
