"""SQLAlchemy 2.0 typed models: the whole schema, every table named `ss_...` (storage/table_names.py).
The Alembic migrations in storage/migrations/ create it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python, whatever the database keeps.

    SQLite has no time zones and hands back naive values; normalising here means no caller
    ever compares naive with aware datetimes.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base; all timestamps are timezone-aware UTC (see UTCDateTime)."""

    type_annotation_map = {datetime: UTCDateTime()}


class TaskState(Base):
    """Persisted operator intent and progress of one task (or the consumer, name='consumer:kafka')."""

    __tablename__ = "ss_task_state"

    name: Mapped[str] = mapped_column(String(80), primary_key=True)
    enabled: Mapped[bool]
    interval_seconds: Mapped[int | None]
    last_run_scheduled_for: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]
    # Cluster: the control version of the last change (storage/control.py); replicas poll for newer.
    version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # An operator's cron line replacing the declared trigger ({"cron": ..., "tz": ...}); exclusive
    # with interval_seconds (PATCH sets one and clears the other).
    cron_override: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class RuntimeTask(Base):
    """A task created at runtime (POST /tasks, add_task) from a declared function. Deleting it
    keeps the row (`deleted_at`, a new version) so every replica learns of the removal through
    the control version; creating the name again reuses the row."""

    __tablename__ = "ss_runtime_tasks"

    name: Mapped[str] = mapped_column(String(80), primary_key=True)
    function: Mapped[str] = mapped_column(String(80))
    trigger: Mapped[dict[str, Any]] = mapped_column(JSON)  # {"cron", "tz"} or {"interval_seconds"}
    kwargs: Mapped[dict[str, Any]] = mapped_column(JSON)
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    retries: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    retry_backoff: Mapped[float] = mapped_column(Float, default=10.0, server_default="10")
    checkin_url: Mapped[str | None] = mapped_column(String(2048))  # GET after each success (checkins.py)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(200))
    deleted_at: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class TaskRun(Base):
    """One run of a task: written when it starts (outcome `running`) and updated when it ends;
    skipped and missed runs are written once."""

    __tablename__ = "ss_task_runs"
    __table_args__ = (
        Index("ix_ss_task_runs_task_started", "task", "started_at"),
        Index("ix_ss_task_runs_finished", "finished_at"),
        # Start-up finds runs a dead process left in progress (storage/recovery.py) through this.
        Index(
            "ix_ss_task_runs_running",
            "outcome",
            postgresql_where=text("outcome = 'running'"),
            sqlite_where=text("outcome = 'running'"),
        ),
    )

    run_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    task: Mapped[str] = mapped_column(String(80))
    trigger: Mapped[str] = mapped_column(String(16))
    scheduled_for: Mapped[datetime | None]
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    duration_ms: Mapped[float | None] = mapped_column(Float)
    outcome: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    replica: Mapped[str | None] = mapped_column(String(64))  # cluster: the replica that ran (or recorded) it
    # 1 for a run itself, 2.. for its retries (0006): rows written before it count as first attempts.
    attempt: Mapped[int] = mapped_column(Integer, default=1, server_default="1")


class AuditEntry(Base):
    """A change made through the API: who, what, when."""

    __tablename__ = "ss_audit_log"
    __table_args__ = (Index("ix_ss_audit_log_at", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(80))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Notification(Base):
    """A message to deliver (webhook or log); the `notifications` task moves it to sent/failed/dead."""

    __tablename__ = "ss_notifications"
    __table_args__ = (
        Index("ix_ss_notifications_due", "status", "next_attempt_at"),
        Index("ix_ss_notifications_updated", "updated_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    event_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    channel: Mapped[str] = mapped_column(String(16))
    recipient: Mapped[str] = mapped_column(String(256))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    # W3C traceparent of the message's process span: the webhook POST continues that trace.
    trace_parent: Mapped[str | None] = mapped_column(String(55))


class Report(Base):
    """An aggregate of one window, written by the `report` task."""

    __tablename__ = "ss_reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(index=True)
    window_start: Mapped[datetime]
    window_end: Mapped[datetime]
    body: Mapped[dict[str, Any]] = mapped_column(JSON)


class Event(Base):
    """A validated Kafka event; `id` is the producer's id, so replays never add a row."""

    __tablename__ = "ss_events"
    # No index on `type` (dropped in 0004): no query used it, and every insert paid for it.
    __table_args__ = (Index("ix_ss_events_received", "received_at"),)

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    type: Mapped[str] = mapped_column(String(128))
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime]
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    key: Mapped[str | None] = mapped_column(String(256))
    topic: Mapped[str] = mapped_column(String(249))
    partition: Mapped[int] = mapped_column(Integer)
    offset: Mapped[int] = mapped_column(BigInteger)


class DeadLetter(Base):
    """A Kafka message that could not be processed, kept with the reason."""

    __tablename__ = "ss_dead_letters"
    __table_args__ = (
        UniqueConstraint("topic", "partition", "offset", name="uq_ss_dead_letters_position"),
        Index("ix_ss_dead_letters_created", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    topic: Mapped[str] = mapped_column(String(249))
    partition: Mapped[int] = mapped_column(Integer)
    offset: Mapped[int] = mapped_column(BigInteger)
    key: Mapped[bytes | None] = mapped_column(LargeBinary)
    value: Mapped[bytes | None] = mapped_column(LargeBinary)
    value_truncated: Mapped[bool] = mapped_column(default=False)
    error: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
