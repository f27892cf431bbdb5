"""Application: the running parts of one ServiceScheduler (embedding.py), wired from one Settings
object: database, scheduler engine, consumer, cluster sync. Built at each start, so that
declaring a ServiceScheduler (often at import time) opens no database and creates no file."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from servicescheduler.logs import get_logger
from servicescheduler.metrics import Metrics
from servicescheduler.scheduler import Scheduler
from servicescheduler.scheduling.cluster_sync import ClusterSync
from servicescheduler.scheduling.coordination import Coordinator, DatabaseCoordinator, LocalCoordinator
from servicescheduler.scheduling.registry import TaskRegistry
from servicescheduler.settings import Settings
from servicescheduler.storage.control import ControlState
from servicescheduler.storage.db import Database
from servicescheduler.storage.migrate import ensure_current

if TYPE_CHECKING:
    from servicescheduler.consumers.decoding.contracts import TopicRegistry
    from servicescheduler.consumers.running.supervisor import ConsumerSupervisor
    from servicescheduler.consumers.running.throughput import ThroughputSampler
    from servicescheduler.consumers.storing.handlers import HandlerRegistry

log = get_logger(__name__)


class Application:
    """The service's parts, wired from one Settings object."""

    def __init__(
        self,
        settings: Settings,
        registry: TaskRegistry,
        *,
        handlers: HandlerRegistry | None = None,
        topics: TopicRegistry | None = None,
        metrics: Metrics | None = None,
        admin_token: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.handlers = handlers
        self.topics = topics
        self.metrics = metrics or Metrics()
        self.database = Database(settings)
        self.consumer_database = self.database
        self.registry = registry
        # Cluster hook: replicas (and uvicorn workers) on one database share one schedule.
        self.coordinator: Coordinator = (
            DatabaseCoordinator(self.database, ttl_seconds=settings.cluster_replica_ttl_seconds, clock=time.time)
            if settings.cluster_enabled
            else LocalCoordinator()
        )
        self.scheduler = Scheduler(
            settings, self.database, registry, metrics=self.metrics, coordinator=self.coordinator, clock=clock
        )
        self.admin_token = admin_token  # empty when the host's `auth` guards mutations
        self.consumer: ConsumerSupervisor | None = None
        self.throughput: ThroughputSampler | None = None  # events/s history for the dashboard
        if settings.consumes_kafka:
            from servicescheduler.consumers.running.pipeline import (
                build_consumer,  # imports kafka-python: only when it is used
            )
            from servicescheduler.consumers.running.throughput import ThroughputSampler

            # On SQLite the consumer writes through an engine of its own: its bulk inserts' big
            # prepared statements then live in its own two connections, not in every pooled one.
            if self.database.dialect == "sqlite":
                self.consumer_database = Database(settings, for_consumer=True)
            self.consumer = build_consumer(
                settings, self.consumer_database, self.metrics, self.scheduler, handlers, topics
            )
            self.throughput = ThroughputSampler(self.consumer.status)
            self.scheduler.supervise(self.throughput)
        self.cluster_sync: ClusterSync | None = None
        if isinstance(self.coordinator, DatabaseCoordinator):
            self.cluster_sync = ClusterSync(
                self.coordinator,
                self._apply_control,
                metrics=self.metrics,
                partitions=self._partitions,
                apply_definition=self.scheduler.apply_definition,
                recover_retries=self.scheduler.recover_orphaned_retries,
            )
        self.started = False

    def _apply_control(self, change: ControlState) -> None:
        """Cluster hook: a change persisted by any replica, for a task or for the consumer."""
        if self.consumer is not None and change.name == self.consumer.state_name:
            # Off the cluster-sync thread: stopping the consumer blocks up to KAFKA_STOP_TIMEOUT_SECONDS,
            # longer than a heartbeat may wait.
            threading.Thread(
                target=self.consumer.apply_shared, args=(change.enabled,), name="consumer-control", daemon=True
            ).start()
        else:
            self.scheduler.apply_control(change)

    def _partitions(self) -> list[str]:
        """The Kafka partitions this replica consumes (published in the replicas table)."""
        if self.consumer is None:
            return []
        return list(self.consumer.status().get("assigned_partitions") or [])

    def start(self, *, run_loop: bool = True) -> None:
        """Migrates the database (or checks it is current), then starts the scheduler (and the
        consumer it supervises). Without `run_loop`, the caller drives the scheduler with tick()
        (servicescheduler.testing)."""
        ensure_current(self.database.engine, migrate=self.settings.migrate_on_start)
        warn_unknown_task_settings(self.settings, self.registry)
        warn_if_multiple_workers(self.settings)
        if self.consumer is not None:
            self.consumer.load_state()
        # Read before the scheduler loads its state: a change committed in between is applied again.
        seen = self.coordinator.control_version()
        self.scheduler.start(run_loop=run_loop)
        if self.cluster_sync is not None:
            self.cluster_sync.start(seen)
        self.started = True
        log.info(
            "service_started",
            tasks=len(self.scheduler.names()),
            database=self.database.dialect,
            kafka=self.consumer is not None,
            scheduler_enabled=self.settings.scheduler_enabled,
        )

    def stop(self, timeout: float | None = None) -> list[str]:
        """Stops the scheduler within the shutdown grace (or `timeout`); returns tasks that did not finish."""
        unfinished = self.scheduler.stop(timeout) if self.started else []
        if self.cluster_sync is not None and self.started:
            self.cluster_sync.stop()  # after the runs: their leases were renewed while they finished
        if self.consumer_database is not self.database:
            self.consumer_database.dispose()
        self.database.dispose()
        return unfinished

    def readiness(self) -> tuple[dict[str, Any], list[str]]:
        """(checks, reasons not ready) for /ready."""
        checks: dict[str, Any] = {}
        reasons: list[str] = []
        try:
            self.database.ping()
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = "unreachable"
            reasons.append(f"database unreachable: {type(exc).__name__}")
        alive, reason = self.scheduler.health()
        checks["scheduler"] = "ok" if alive else reason
        if not alive:
            reasons.append(f"scheduler: {reason}")
        if self.consumer is not None:
            ok, consumer_reason = self.consumer.readiness()
            checks["consumer"] = "ok" if ok else consumer_reason
            if not ok:
                reasons.append(f"consumer: {consumer_reason}")
        return checks, reasons


def warn_unknown_task_settings(settings: Settings, registry: TaskRegistry) -> None:
    """TASK_<NAME>_* naming no registered task is almost always a typo: say so at start-up."""
    known = {spec.name for spec in registry}
    for field, suffix in (
        ("task_intervals", "INTERVAL_SECONDS"),
        ("task_enabled", "ENABLED"),
        ("task_checkin_urls", "CHECKIN_URL"),
    ):
        for name in sorted(set(getattr(settings, field)) - known):
            log.warning(
                "task_setting_unknown_task",
                variable=f"TASK_{name.upper().replace('-', '__')}_{suffix}",
                task=name,
                known_tasks=sorted(known),
            )


def warn_if_multiple_workers(settings: Settings) -> None:
    """Several workers are safe while they coordinate (CLUSTER_ENABLED, the default); without it
    every worker would run every task."""
    if settings.cluster_enabled:
        return
    workers = os.environ.get("WEB_CONCURRENCY", "1")
    if multiprocessing.parent_process() is not None or (workers.isdigit() and int(workers) > 1):
        log.warning(
            "multiple_workers_detected",
            hint="CLUSTER_ENABLED is false: every worker process runs every task; run one worker "
            "(--workers 1) or enable clustering",
        )
