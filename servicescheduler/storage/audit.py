"""The audit log: the one place audit rows are built and read."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from servicescheduler.storage.db import Database
from servicescheduler.storage.models import AuditEntry
from servicescheduler.storage.records import AuditRecord
from servicescheduler.support.clock import iso


def add_audit(session: Session, record: AuditRecord) -> None:
    """Adds `record` to the audit log in `session`'s transaction."""
    session.add(
        AuditEntry(at=record.at, actor=record.actor, action=record.action, target=record.target, detail=record.detail)
    )


def recent_audit(database: Database, limit: int, target: str | None = None) -> list[dict[str, Any]]:
    """Audit entries, newest first, as API dicts."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if target is not None:
        query = query.where(AuditEntry.target == target)
    with database.read_session() as session:
        return [
            {"at": iso(row.at), "actor": row.actor, "action": row.action, "target": row.target, "detail": row.detail}
            for row in session.scalars(query)
        ]
