"""The replicas table: who is (or was) running, with heartbeats and the partitions each consumes."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from servicescheduler.storage.claims import insert_ignoring_conflicts, running_by_owner
from servicescheduler.storage.cluster_models import Replica
from servicescheduler.support.clock import iso, to_datetime, to_epoch


@dataclass(frozen=True)
class ReplicaInfo:
    """One replica as the table keeps it."""

    id: str
    host: str
    pid: int
    version: str
    started_at: float
    last_seen_at: float
    partitions: tuple[str, ...] = ()


def beat(session: Session, replica: ReplicaInfo) -> None:
    """Records that `replica` is alive now (inserting its row if it is new or was pruned)."""
    values = {"last_seen_at": to_datetime(replica.last_seen_at), "partitions": list(replica.partitions)}
    result = session.execute(update(Replica).where(Replica.id == replica.id).values(**values))
    if result.rowcount == 0:  # type: ignore[attr-defined]
        insert_ignoring_conflicts(
            session,
            Replica,
            {
                "id": replica.id,
                "host": replica.host,
                "pid": replica.pid,
                "version": replica.version,
                "started_at": to_datetime(replica.started_at),
                **values,
            },
            ["id"],
        )


def remove(session: Session, replica_id: str) -> None:
    """Removes a replica that stops cleanly."""
    session.execute(delete(Replica).where(Replica.id == replica_id))


def prune(session: Session, before: float) -> int:
    """Forgets replicas not seen since `before`."""
    result = session.execute(delete(Replica).where(Replica.last_seen_at < to_datetime(before)))
    return int(result.rowcount)  # type: ignore[attr-defined]


def replicas(session: Session) -> list[ReplicaInfo]:
    """Every known replica, oldest first."""
    rows = session.scalars(select(Replica).order_by(Replica.started_at, Replica.id))
    return [
        ReplicaInfo(
            row.id,
            row.host,
            row.pid,
            row.version,
            to_epoch(row.started_at) or 0.0,
            to_epoch(row.last_seen_at) or 0.0,
            tuple(row.partitions or ()),
        )
        for row in rows
    ]


def describe(session: Session, self_id: str, ttl_seconds: float, now: float) -> dict[str, object]:
    """The GET /cluster view: every known replica, alive or not, with its runs and partitions."""
    running = running_by_owner(session)
    return {
        "self": self_id,
        "replicas": [
            {
                "id": replica.id,
                "host": replica.host,
                "pid": replica.pid,
                "version": replica.version,
                "started_at": iso(replica.started_at),
                "last_seen_at": iso(replica.last_seen_at),
                "alive": now - replica.last_seen_at <= ttl_seconds,
                "running": running.get(replica.id, []),
                "partitions": list(replica.partitions),
            }
            for replica in replicas(session)
        ],
    }
