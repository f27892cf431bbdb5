"""Wiring of the Kafka pipeline for an Application.

`build_consumer(...)` wires it for an Application (called when KAFKA_ENABLED).
"""

from __future__ import annotations

from servicescheduler.consumers.running.supervisor import ConsumerSupervisor
from servicescheduler.consumers.running.worker import ConsumerWorker
from servicescheduler.metrics import Metrics
from servicescheduler.scheduler import Scheduler
from servicescheduler.settings import Settings
from servicescheduler.storage.db import Database


def build_consumer(
    settings: Settings, database: Database, metrics: Metrics, scheduler: Scheduler
) -> ConsumerSupervisor:
    """The ConsumerSupervisor, registered with `scheduler` (which starts, checks and stops it).

    Each worker asks the scheduler for a coalesced `notifications` run after a batch that created
    notifications.
    """

    def build_worker() -> ConsumerWorker:
        return ConsumerWorker(
            settings=settings,
            database=database,
            metrics=metrics,
            on_notifications=lambda: scheduler.request_run("notifications"),
        )

    supervisor = ConsumerSupervisor(
        settings=settings,
        states=scheduler.states,
        metrics=metrics,
        worker_factory=build_worker,
        wake=lambda: scheduler.wake(component=ConsumerSupervisor.name),
    )
    scheduler.supervise(supervisor)
    return supervisor
