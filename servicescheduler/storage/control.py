"""Shared control: every enable/disable/PATCH bumps one cluster-wide version number in the same
transaction, and the task_state row remembers the version that changed it. Replicas poll the
version (and, on PostgreSQL, are woken by NOTIFY at commit) and re-read only the newer rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from servicescheduler.storage.claims import insert_ignoring_conflicts
from servicescheduler.storage.cluster_models import ControlVersion
from servicescheduler.storage.db import SCHEMA_OPTION
from servicescheduler.storage.models import TaskState
from servicescheduler.support.clock import to_datetime, to_epoch, utcnow

# PostgreSQL NOTIFY channel (channel_for: per schema).
CHANNEL = "ss_control"


def channel_for(schema: str | None) -> str:
    """The NOTIFY channel of the service in `schema` (DATABASE_SCHEMA): channels belong to the
    database, not to a schema, and services in two schemas must not wake each other."""
    return f"{CHANNEL}_{schema}" if schema else CHANNEL


@dataclass(frozen=True)
class ControlState:
    """One task's shared control state at a version."""

    name: str
    enabled: bool
    interval_seconds: int | None
    version: int
    cron: dict[str, Any] | None = None  # a PATCHed cron line ({"cron", "tz"}) replacing the trigger
    anchor: float | None = None  # the grid origin, for a replica that has none yet (cron -> interval)


def bump_version(session: Session) -> int:
    """Takes the next control version (the row lock orders concurrent changes); notifies on PostgreSQL."""
    version = session.execute(
        update(ControlVersion)
        .where(ControlVersion.id == 1)
        .values(version=ControlVersion.version + 1)
        .returning(ControlVersion.version)
    ).scalar_one()
    if session.get_bind().dialect.name == "postgresql":
        # Delivered at commit, so a listener never reads the row before the change is visible.
        channel = channel_for(session.get_bind().get_execution_options().get(SCHEMA_OPTION))
        session.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": channel, "payload": str(version)})
    return int(version)


def current_version(session: Session) -> int:
    """The latest control version (0 before the first change)."""
    return int(session.scalar(select(ControlVersion.version).where(ControlVersion.id == 1)) or 0)


def changed_since(session: Session, version: int) -> list[ControlState]:
    """Tasks changed after `version`, oldest change first."""
    rows = session.execute(select(TaskState).where(TaskState.version > version).order_by(TaskState.version)).scalars()
    return [
        ControlState(
            row.name,
            row.enabled,
            row.interval_seconds,
            row.version,
            row.cron_override,
            to_epoch(row.last_run_scheduled_for),
        )
        for row in rows
    ]


def seed_states(session: Session, initial: dict[str, tuple[bool, int | None]], anchors: dict[str, float]) -> None:
    """Creates missing task_state rows and gives anchor-less tasks a grid origin; the first replica
    to write wins, so every replica then reads the same rows and plans the same slots."""
    now = utcnow()
    for name, (enabled, interval) in initial.items():
        insert_ignoring_conflicts(
            session,
            TaskState,
            {"name": name, "enabled": enabled, "interval_seconds": interval, "updated_at": now, "version": 0},
            ["name"],
        )
    for name, anchor in anchors.items():
        session.execute(
            update(TaskState)
            .where(TaskState.name == name, TaskState.last_run_scheduled_for.is_(None))
            .values(last_run_scheduled_for=to_datetime(anchor))
        )
