"""Slot claims and running leases: how replicas on one database agree on who runs what.

A slot (task, scheduled_for) is claimed with INSERT ... ON CONFLICT DO NOTHING: every replica may
try, exactly one insert wins. A lease (one row per task) says a run is in progress, on which
replica, until when; its owner renews it, and a lease past its expiry belongs to a dead replica:
whoever finds it records that run `interrupted` and removes it, once (a conditional delete).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from servicescheduler.storage.cluster_models import SlotClaim, TaskLease
from servicescheduler.storage.models import TaskRun, TaskState
from servicescheduler.support.clock import to_datetime, to_epoch
from servicescheduler.vocabulary import RunCause, RunOutcome


def insert_ignoring_conflicts(session: Session, model: Any, values: dict[str, Any], keys: list[str]) -> bool:
    """INSERT ... ON CONFLICT (keys) DO NOTHING on PostgreSQL and SQLite; True if the row was inserted."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(model)
        .values(**values)
        .on_conflict_do_nothing(index_elements=keys)
        .returning(model.__table__.c[keys[0]])
    )
    # RETURNING, not rowcount: psycopg reports no row count for an INSERT ... ON CONFLICT here.
    return session.execute(statement).first() is not None


def slot_time(scheduled_for: float) -> datetime:
    """The claim key of a slot: millisecond-rounded, so float noise never splits one slot in two."""
    moment = to_datetime(round(scheduled_for, 3))
    assert moment is not None
    return moment


def claim_slot(session: Session, task: str, scheduled_for: float, replica: str, now: float) -> bool:
    """Claims (task, scheduled_for) for `replica`; True if this call won it."""
    return insert_ignoring_conflicts(
        session,
        SlotClaim,
        {"task": task, "scheduled_for": slot_time(scheduled_for), "replica": replica, "claimed_at": to_datetime(now)},
        ["task", "scheduled_for"],
    )


@dataclass(frozen=True)
class Lease:
    """A run in progress somewhere in the cluster."""

    task: str
    run_id: str
    owner: str
    trigger: str
    scheduled_for: float | None
    started_at: float
    expires_at: float

    @classmethod
    def from_row(cls, row: TaskLease) -> Lease:
        """The lease a `task_leases` row describes."""
        return cls(
            row.task,
            row.run_id,
            row.owner,
            row.trigger,
            to_epoch(row.scheduled_for),
            to_epoch(row.started_at) or 0.0,
            to_epoch(row.expires_at) or 0.0,
        )


def try_lease(session: Session, lease: Lease) -> Lease | None:
    """Takes the lease of `lease.task`; returns None when taken, else the current holder's lease."""
    values = {
        "task": lease.task,
        "run_id": lease.run_id,
        "owner": lease.owner,
        "trigger": lease.trigger,
        "scheduled_for": to_datetime(lease.scheduled_for),
        "started_at": to_datetime(lease.started_at),
        "expires_at": to_datetime(lease.expires_at),
        "rerun": False,
    }
    if insert_ignoring_conflicts(session, TaskLease, values, ["task"]):
        return None
    holder = session.get(TaskLease, lease.task, populate_existing=True)
    if holder is None:  # released between our insert and our read: try once more
        return None if insert_ignoring_conflicts(session, TaskLease, values, ["task"]) else lease
    return Lease.from_row(holder)


def release_lease(session: Session, task: str, run_id: str) -> bool:
    """Removes our lease; returns True if an event-requested follow-up run was asked for meanwhile."""
    rerun = session.execute(
        delete(TaskLease).where(TaskLease.task == task, TaskLease.run_id == run_id).returning(TaskLease.rerun)
    ).scalar()
    return bool(rerun)


def request_rerun(session: Session, task: str) -> bool:
    """Asks the holder of `task`'s lease for one follow-up run; False when no run is in progress."""
    result = session.execute(update(TaskLease).where(TaskLease.task == task).values(rerun=True))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def renew_leases(session: Session, owner: str, tasks: list[str], expires_at: float) -> int:
    """Extends the leases `owner` holds on `tasks` (its runs in progress); returns how many."""
    if not tasks:
        return 0
    result = session.execute(
        update(TaskLease)
        .where(TaskLease.owner == owner, TaskLease.task.in_(tasks))
        .values(expires_at=to_datetime(expires_at))
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def expired_leases(session: Session, now: float) -> list[Lease]:
    """Leases whose owner stopped renewing them."""
    rows = session.scalars(select(TaskLease).where(TaskLease.expires_at < to_datetime(now)))
    return [Lease.from_row(row) for row in rows]


def interrupt(session: Session, lease: Lease, now: float, reason: str) -> bool:
    """Removes an expired lease and records its run `interrupted`; False if another replica did it first."""
    gone = session.execute(
        delete(TaskLease).where(
            TaskLease.task == lease.task, TaskLease.run_id == lease.run_id, TaskLease.expires_at < to_datetime(now)
        )
    )
    if gone.rowcount != 1:  # type: ignore[attr-defined]
        return False
    session.merge(
        TaskRun(
            run_id=lease.run_id,
            task=lease.task,
            trigger=lease.trigger,
            scheduled_for=to_datetime(lease.scheduled_for),
            started_at=to_datetime(lease.started_at),
            finished_at=to_datetime(now),
            duration_ms=round((now - lease.started_at) * 1000, 3),
            outcome=RunOutcome.INTERRUPTED,
            error=reason,
            replica=lease.owner,
        )
    )
    _advance_anchor(session, lease)
    return True


def _advance_anchor(session: Session, lease: Lease) -> None:
    """An interrupted run did start: its slot becomes the task's grid anchor (as a finished run's
    would), so a restart does not take that slot for one still to run."""
    slot = to_datetime(lease.scheduled_for)
    if slot is None or lease.trigger == RunCause.RETRY:  # a retry's due time is off the grid
        return
    session.execute(
        update(TaskState)
        .where(TaskState.name == lease.task)
        .where((TaskState.last_run_scheduled_for.is_(None)) | (TaskState.last_run_scheduled_for < slot))
        .values(last_run_scheduled_for=slot)
    )


def running_by_owner(session: Session) -> dict[str, list[str]]:
    """{replica id: names of the tasks it is running}."""
    running: dict[str, list[str]] = {}
    for owner, task in session.execute(select(TaskLease.owner, TaskLease.task).order_by(TaskLease.task)):
        running.setdefault(owner, []).append(task)
    return running


def prune_claims(session: Session, before: float) -> int:
    """Deletes slot claims older than `before` (they only guard slots that are long past)."""
    result = session.execute(delete(SlotClaim).where(SlotClaim.claimed_at < to_datetime(before)))
    return int(result.rowcount)  # type: ignore[attr-defined]
