"""Wiring of the Kafka pipeline for a running ServiceScheduler.

`build_consumer(...)` wires it for a running ServiceScheduler (called when KAFKA_ENABLED).
"""

from __future__ import annotations

from servicescheduler.consumers.decoding.contracts import TopicRegistry
from servicescheduler.consumers.running.supervisor import ConsumerSupervisor
from servicescheduler.consumers.running.worker import ConsumerWorker
from servicescheduler.consumers.storing.handlers import HandlerRegistry
from servicescheduler.consumers.storing.handlers import handlers as module_handlers
from servicescheduler.metrics import Metrics
from servicescheduler.scheduler import Scheduler
from servicescheduler.settings import Settings
from servicescheduler.storage.db import Database


def build_consumer(
    settings: Settings,
    database: Database,
    metrics: Metrics,
    scheduler: Scheduler,
    handlers: HandlerRegistry | None = None,
    topics: TopicRegistry | None = None,
) -> ConsumerSupervisor:
    """The ConsumerSupervisor, registered with `scheduler` (which starts, checks and stops it).

    Each worker asks the scheduler for a coalesced `notifications` run after a batch that created
    notifications. `handlers` are the event handlers (default: the module-level registry);
    `topics` the declared topics' contracts (consumed besides KAFKA_TOPICS).
    """

    def build_worker() -> ConsumerWorker:
        return ConsumerWorker(
            settings=settings,
            database=database,
            metrics=metrics,
            registry=handlers if handlers is not None else module_handlers,
            on_notifications=lambda: scheduler.request_run("notifications"),
            topics=topics,
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
