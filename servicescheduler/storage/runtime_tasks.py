"""Runtime task definitions (ss_runtime_tasks): created and deleted through the API or the Python
API, each change in one transaction with its task_state row, its control version and its audit
entry, so every replica learns of it as of an enable or a PATCH (storage/control.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from servicescheduler.storage.audit import add_audit
from servicescheduler.storage.control import bump_version
from servicescheduler.storage.db import Database
from servicescheduler.storage.models import RuntimeTask, TaskState
from servicescheduler.storage.records import AuditRecord
from servicescheduler.support.clock import utcnow


@dataclass(frozen=True)
class RuntimeDefinition:
    """What a runtime task is made of (the JSON forms of its trigger and arguments)."""

    name: str
    function: str
    trigger: dict[str, Any]
    kwargs: dict[str, Any]
    description: str = ""
    version: int = 0
    deleted: bool = False
    retries: int = 0
    retry_backoff: float = 10.0
    checkin_url: str | None = None


def _definition(row: RuntimeTask) -> RuntimeDefinition:
    return RuntimeDefinition(
        row.name,
        row.function,
        dict(row.trigger),
        dict(row.kwargs),
        row.description,
        row.version,
        row.deleted_at is not None,
        row.retries,
        row.retry_backoff,
        row.checkin_url,
    )


def create(
    database: Database, definition: RuntimeDefinition, *, enabled: bool, anchor: datetime | None, actor: str
) -> int | None:
    """Persists a new runtime task and its fresh task_state row; returns the change's control
    version, or None when a live runtime task has the name (a deleted one's row is reused)."""
    now = utcnow()
    try:
        with database.session() as session:
            row = session.get(RuntimeTask, definition.name, with_for_update=True)
            if row is not None and row.deleted_at is None:
                return None
            if row is None:
                row = RuntimeTask(name=definition.name)
                session.add(row)
            row.function, row.trigger, row.kwargs = definition.function, definition.trigger, definition.kwargs
            row.description, row.created_at, row.created_by, row.deleted_at = definition.description, now, actor, None
            row.retries, row.retry_backoff = definition.retries, definition.retry_backoff
            row.checkin_url = definition.checkin_url
            version = row.version = bump_version(session)
            # A fresh state: a name used before starts over (its run history stays).
            session.execute(delete(TaskState).where(TaskState.name == definition.name))
            session.add(
                TaskState(
                    name=definition.name,
                    enabled=enabled,
                    interval_seconds=None,
                    last_run_scheduled_for=anchor,
                    updated_at=now,
                    version=version,
                )
            )
            detail = {
                "function": definition.function,
                "trigger": definition.trigger,
                "kwargs": definition.kwargs,
                "enabled": enabled,
                "retries": definition.retries,
                "retry_backoff": definition.retry_backoff,
                # The host only: a check-in URL's path is its secret, and the audit is readable by all.
                "checkin_host": None if definition.checkin_url is None else urlsplit(definition.checkin_url).hostname,
            }
            add_audit(session, AuditRecord(actor=actor, action="create", target=definition.name, detail=detail))
            return version
    except IntegrityError:  # another replica created the name at the same moment
        return None


def remove(database: Database, name: str, *, actor: str) -> int | None:
    """Marks a runtime task deleted and drops its task_state row; returns the control version, or
    None when no live runtime task has the name."""
    with database.session() as session:
        row = session.get(RuntimeTask, name, with_for_update=True)
        if row is None or row.deleted_at is not None:
            return None
        row.deleted_at = utcnow()
        version = row.version = bump_version(session)
        session.execute(delete(TaskState).where(TaskState.name == name))
        add_audit(session, AuditRecord(actor=actor, action="delete", target=name, detail={"function": row.function}))
        return version


def active(database: Database) -> list[RuntimeDefinition]:
    """Every runtime task not deleted, oldest change first (what a starting replica loads)."""
    with database.read_session() as session:
        rows = session.scalars(
            select(RuntimeTask).where(RuntimeTask.deleted_at.is_(None)).order_by(RuntimeTask.version)
        )
        return [_definition(row) for row in rows]


def changed_since(session: Session, version: int) -> list[RuntimeDefinition]:
    """Runtime tasks created or deleted after `version`, oldest change first."""
    rows = session.scalars(select(RuntimeTask).where(RuntimeTask.version > version).order_by(RuntimeTask.version))
    return [_definition(row) for row in rows]
