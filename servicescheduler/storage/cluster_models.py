"""Tables that let several replicas share one schedule: slot claims, running leases, the replicas
and the control version. Created by migration 0003; the columns added to existing tables
(`task_runs.replica`, `task_state.version`) are declared in storage/models.py."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from servicescheduler.storage.models import Base


class SlotClaim(Base):
    """One row per (task, scheduled_for): the replica whose insert wins runs (or records) that slot."""

    __tablename__ = "ss_slot_claims"
    __table_args__ = (Index("ix_ss_slot_claims_claimed", "claimed_at"),)

    task: Mapped[str] = mapped_column(String(80), primary_key=True)
    scheduled_for: Mapped[datetime] = mapped_column(primary_key=True)
    replica: Mapped[str] = mapped_column(String(64))
    claimed_at: Mapped[datetime]


class TaskLease(Base):
    """The cluster-wide "a run of this task is in progress" row, renewed by its owner's heartbeat."""

    __tablename__ = "ss_task_leases"

    task: Mapped[str] = mapped_column(String(80), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(36))
    owner: Mapped[str] = mapped_column(String(64))
    trigger: Mapped[str] = mapped_column(String(16))
    scheduled_for: Mapped[datetime | None]
    started_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    # An event-requested run arrived while this run was in progress (on any replica): the owner
    # starts one follow-up run when it releases the lease, so requests coalesce cluster-wide.
    rerun: Mapped[bool] = mapped_column(default=False)


class Replica(Base):
    """A running service process; dead when `last_seen_at` is older than CLUSTER_REPLICA_TTL_SECONDS."""

    __tablename__ = "ss_replicas"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    version: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    partitions: Mapped[list[str] | None] = mapped_column(JSON)


class ControlVersion(Base):
    """One row (id=1): bumped by every enable/disable/PATCH; replicas poll it (or LISTEN)."""

    __tablename__ = "ss_control_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
