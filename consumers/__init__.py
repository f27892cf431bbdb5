"""Kafka event pipeline: a supervised consumer thread that stores validated events.

`attach(runtime)` wires it into an AppRuntime (called by `runtime.start()` when KAFKA_ENABLED).
"""

from __future__ import annotations


def attach(runtime) -> None:
    """Builds the ConsumerSupervisor from the runtime's parts, sets `runtime.consumer` and
    registers it with the scheduler (which starts, checks and stops it)."""
    from consumers.supervisor import ConsumerSupervisor
    from consumers.worker import ConsumerWorker

    scheduler = runtime.scheduler

    def build_worker() -> ConsumerWorker:
        return ConsumerWorker(settings=runtime.settings, database=runtime.database, metrics=runtime.metrics,
                              on_notifications=lambda: scheduler.request_run("notifications"))

    supervisor = ConsumerSupervisor(
        settings=runtime.settings, states=scheduler.states, metrics=runtime.metrics,
        worker_factory=build_worker, wake=lambda: scheduler.wake(component=ConsumerSupervisor.name))
    supervisor.load_state()
    runtime.consumer = supervisor
    scheduler.supervise(supervisor)
    from consumers.throughput import ThroughputSampler

    runtime.throughput = ThroughputSampler(supervisor.status)
    scheduler.supervise(runtime.throughput)
