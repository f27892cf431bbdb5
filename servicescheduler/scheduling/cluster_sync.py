"""ClusterSync: the `cluster-sync` thread of a replica.

- heartbeat (every TTL/5): refreshes this replica's row, renews the leases of its runs in
  progress, records runs of dead replicas (expired leases) `interrupted`, re-plans the pending
  retries dead replicas stored (Scheduler.recover_orphaned_retries), prunes old claims;
- control: applies enable/disable/PATCH and runtime tasks' creation and deletion persisted by any
  replica, polling the control version (SQLite: 4 times a second) and, on PostgreSQL, woken at
  once by LISTEN/NOTIFY (`control-listener` thread), with a once-a-second poll as the fallback.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from prometheus_client import Gauge

from servicescheduler.logs import get_logger
from servicescheduler.metrics import Metrics
from servicescheduler.scheduling.coordination import (
    SOFTWARE_VERSION,
    DatabaseCoordinator,
    interrupted_reason,
    log_interrupted,
)
from servicescheduler.storage import claims, cluster, control, runtime_tasks
from servicescheduler.storage.cluster import ReplicaInfo
from servicescheduler.storage.control import ControlState
from servicescheduler.storage.db import Database
from servicescheduler.storage.runtime_tasks import RuntimeDefinition
from servicescheduler.support.clock import to_epoch

log = get_logger(__name__)

SQLITE_POLL_SECONDS = 0.25
POSTGRES_POLL_SECONDS = 1.0  # NOTIFY wakes the thread; the poll only covers a lost connection
CLAIM_RETENTION_SECONDS = 24 * 3600
PRUNE_EVERY_SECONDS = 60.0


class ClusterSync:
    """Heartbeats, lease upkeep and shared control, on one daemon thread."""

    def __init__(
        self,
        coordinator: DatabaseCoordinator,
        apply: Callable[[ControlState], None],
        *,
        clock: Callable[[], float] = time.time,
        partitions: Callable[[], list[str]] | None = None,
        metrics: Metrics | None = None,
        apply_definition: Callable[[RuntimeDefinition], None] | None = None,
        recover_retries: Callable[[], None] | None = None,
    ) -> None:
        self.coordinator = coordinator
        self._apply = apply
        self._apply_definition = apply_definition
        self._recover_retries = recover_retries  # each beat: pending retries of dead replicas
        self._clock = clock
        self._partitions = partitions
        self._database = coordinator.database
        postgres = self._database.dialect == "postgresql"
        self._poll_seconds = POSTGRES_POLL_SECONDS if postgres else SQLITE_POLL_SECONDS
        self._beat_seconds = max(0.1, coordinator.ttl_seconds / 5)
        self._seen = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cluster-sync", daemon=True)
        self._listener = ControlListener(self._database, self._wake, self._stop) if postgres else None
        self._next_prune = 0.0
        if metrics is not None:
            self._gauges = ReplicaGauges(metrics)
            metrics.on_scrape(self._refresh_gauges)

    def _refresh_gauges(self) -> None:
        try:
            with self._database.read_session() as session:
                view = cluster.describe(
                    session, self.coordinator.replica_id, self.coordinator.ttl_seconds, self._clock()
                )
        except Exception as exc:  # a scrape must still answer while the database is away
            log.warning("cluster_metrics_failed", error=f"{type(exc).__name__}: {exc}")
            return
        self._gauges.update(view, self._clock())

    def start(self, seen_version: int) -> None:
        """Starts after the scheduler loaded its state at `seen_version` (or later)."""
        self._seen = seen_version
        self._beat()
        self._thread.start()
        if self._listener is not None:
            self._listener.start()

    def stop(self) -> None:
        """Stops the threads and removes this replica's row (its leases go with its runs)."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        try:
            with self._database.session() as session:
                cluster.remove(session, self.coordinator.replica_id)
        except Exception as exc:
            log.warning("replica_deregister_failed", replica=self.coordinator.replica_id, error=str(exc))

    def _run(self) -> None:
        next_beat = time.monotonic() + self._beat_seconds
        while not self._stop.is_set():
            self._wake.wait(min(self._poll_seconds, max(0.0, next_beat - time.monotonic())))
            self._wake.clear()
            if self._stop.is_set():
                return
            self._guarded("control_sync_failed", self._poll_control)
            if time.monotonic() >= next_beat:
                next_beat = time.monotonic() + self._beat_seconds
                self._guarded("heartbeat_failed", self._beat)

    def _guarded(self, event: str, step: Callable[[], None]) -> None:
        try:
            step()
        except Exception as exc:  # the database is away: the next round tries again
            log.error(event, replica=self.coordinator.replica_id, error=f"{type(exc).__name__}: {exc}")

    def _poll_control(self) -> None:
        with self._database.read_session() as session:
            if control.current_version(session) <= self._seen:
                return
            changes = control.changed_since(session, self._seen)
            definitions = runtime_tasks.changed_since(session, self._seen) if self._apply_definition else []
        # Runtime tasks first: a created task must exist before its control state can apply.
        for definition in definitions:
            assert self._apply_definition is not None
            self._apply_definition(definition)
        for change in changes:
            self._apply(change)
        self._seen = max([self._seen, *(c.version for c in changes), *(d.version for d in definitions)])

    def _beat(self) -> None:
        coordinator, now = self.coordinator, self._clock()
        me = ReplicaInfo(
            coordinator.replica_id,
            socket.gethostname(),
            os.getpid(),
            SOFTWARE_VERSION,
            coordinator.started_at,
            now,
            tuple(self._partitions() if self._partitions else ()),
        )
        interrupted: list[claims.Lease] = []
        with self._database.session() as session:
            cluster.beat(session, me)
            claims.renew_leases(
                session, coordinator.replica_id, list(coordinator.held()), now + coordinator.ttl_seconds
            )
            for task, run_id in coordinator.unreleased().items():
                claims.release_lease(session, task, run_id)
                coordinator.released(task, run_id)
            for lease in claims.expired_leases(session, now):
                if lease.owner != coordinator.replica_id and claims.interrupt(
                    session, lease, now, interrupted_reason(lease)
                ):
                    interrupted.append(lease)
            if now >= self._next_prune:
                self._next_prune = now + PRUNE_EVERY_SECONDS
                claims.prune_claims(session, now - CLAIM_RETENTION_SECONDS)
                cluster.prune(session, now - max(10 * coordinator.ttl_seconds, PRUNE_EVERY_SECONDS))
        for lease in interrupted:
            log_interrupted(lease, coordinator.replica_id)
        if self._recover_retries is not None:
            self._recover_retries()


class ControlListener:
    """`control-listener` thread: LISTEN on PostgreSQL and wake the sync thread on each NOTIFY."""

    def __init__(self, database: Database, wake: threading.Event, stop: threading.Event) -> None:
        url = database.engine.url.set(drivername="postgresql")
        self._conninfo = url.render_as_string(hide_password=False)
        self._channel = control.channel_for(database.schema)
        self._wake = wake
        self._stop = stop
        self._thread = threading.Thread(target=self._run, name="control-listener", daemon=True)

    def start(self) -> None:
        """Starts listening."""
        self._thread.start()

    def _run(self) -> None:
        import psycopg  # PostgreSQL only

        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5) as connection:
                    connection.execute(f"LISTEN {self._channel}")
                    while not self._stop.is_set():
                        for _ in connection.notifies(timeout=0.5, stop_after=1):
                            self._wake.set()
            except Exception as exc:  # the poll keeps control working meanwhile
                log.warning("control_listener_failed", error=f"{type(exc).__name__}: {exc}")
                self._stop.wait(1.0)


class ReplicaGauges:
    """Per-replica gauges in /metrics, as this replica sees the replicas table."""

    def __init__(self, metrics: Metrics) -> None:
        registry = metrics.registry
        self.alive = Gauge(
            "cluster_replica_alive", "1 while the replica heartbeats within the TTL", ["replica"], registry=registry
        )
        self.age = Gauge(
            "cluster_replica_heartbeat_age_seconds",
            "Seconds since the replica's last heartbeat",
            ["replica"],
            registry=registry,
        )
        self.running = Gauge(
            "cluster_replica_running_tasks", "Runs in progress on the replica", ["replica"], registry=registry
        )
        self.partitions = Gauge(
            "cluster_replica_partitions", "Kafka partitions the replica consumes", ["replica"], registry=registry
        )

    def update(self, view: dict[str, Any], now: float) -> None:
        """Replaces every series with the replicas of `view` (pruned replicas disappear)."""
        for gauge in (self.alive, self.age, self.running, self.partitions):
            gauge.clear()
        for replica in view["replicas"]:
            name = replica["id"]
            self.alive.labels(name).set(1 if replica["alive"] else 0)
            seen = to_epoch(datetime.fromisoformat(replica["last_seen_at"]))
            self.age.labels(name).set(max(0.0, now - (seen or now)))
            self.running.labels(name).set(len(replica["running"]))
            self.partitions.labels(name).set(len(replica["partitions"]))
