"""AppRuntime: builds and owns everything one app instance runs (database, scheduler, consumer)."""

from __future__ import annotations

import multiprocessing
import os

from logs import get_logger
from metrics import Metrics
from registry import TaskRegistry
from scheduler import ServiceScheduler
from settings import Settings
from storage.db import Database
from storage.migrate import upgrade

log = get_logger(__name__)


class AppRuntime:
    """The service's parts, wired from one Settings object; `start()`/`stop()` from the lifespan."""

    def __init__(self, settings: Settings, registry: TaskRegistry) -> None:
        from api.auth import load_admin_token

        self.settings = settings
        self.metrics = Metrics()
        self.database = Database(settings)
        self.registry = registry
        self.scheduler = ServiceScheduler(settings, self.database, registry, metrics=self.metrics)
        self.admin_token = load_admin_token(settings)
        self.consumer = None  # set by consumers.attach() when Kafka is enabled
        self.throughput = None  # consumers.throughput.ThroughputSampler, set with the consumer
        self.started = False

    def start(self) -> None:
        """Migrates the database, then starts the scheduler (and the consumer it supervises)."""
        upgrade(self.database.engine)
        _warn_if_multiple_workers()
        if self.settings.kafka_enabled:
            from consumers import attach

            attach(self)
        self.scheduler.start(run_loop=self.settings.scheduler_enabled)
        self.started = True
        log.info("service_started", tasks=len(self.scheduler.names()), database=self.database.dialect,
                 kafka=self.consumer is not None)

    def stop(self) -> list[str]:
        """Stops the scheduler within the shutdown grace; returns tasks that did not finish."""
        unfinished = self.scheduler.stop() if self.started else []
        self.database.dispose()
        return unfinished

    def readiness(self) -> tuple[dict, list[str]]:
        """(checks, reasons not ready) for /ready."""
        checks: dict = {}
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


def _warn_if_multiple_workers() -> None:
    """Each uvicorn/gunicorn worker runs its own scheduler: every task would run once per worker."""
    workers = os.environ.get("WEB_CONCURRENCY", "1")
    if multiprocessing.parent_process() is not None or (workers.isdigit() and int(workers) > 1):
        log.warning("multiple_workers_detected",
                    hint="every worker process runs every task and its own consumer; run one worker "
                         "(--workers 1) and scale with threads until multi-replica safety exists")
