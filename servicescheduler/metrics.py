"""Prometheus metrics. Each instance owns a CollectorRegistry (so several instances never collide),
or registers into one its host passes (then served with the host's other metrics)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

RUN_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900)
BATCH_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    """All collectors of one service instance."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._refreshers: list[Callable[[], None]] = []
        r = self.registry
        self.task_runs = Counter("task_runs", "Task runs by task and outcome", ["task", "outcome"], registry=r)
        self.task_run_duration = Histogram(
            "task_run_duration_seconds", "Task run wall time", ["task"], buckets=RUN_BUCKETS, registry=r
        )
        self.task_enabled = Gauge("task_enabled", "1 when the task is enabled", ["task"], registry=r)
        # Alert rules need each task's period to tell "has not succeeded within N of its intervals".
        self.task_interval = Gauge(
            "task_interval_seconds",
            "Nominal seconds between the task's runs (calendar tasks: their unit, e.g. 86400 for daily)",
            ["task"],
            registry=r,
        )
        self.task_last_success = Gauge(
            "task_last_success_timestamp_seconds", "Unix time of the last successful run", ["task"], registry=r
        )
        self.run_requests_dropped = Counter(
            "task_run_requests_dropped",
            "Event-triggered run requests dropped: the task is disabled",
            ["task"],
            registry=r,
        )
        # Retries (scheduling/retries.py): `scheduled` when a failed run's next attempt is queued,
        # `dropped` when one is given up (disabled, its next slot first, superseded, shutdown),
        # `exhausted` when the last attempt a task declares (`retries=N`) failed too.
        self.task_retries = Counter(
            "task_retries", "Retry attempts scheduled, dropped and exhausted, by task", ["task", "result"], registry=r
        )
        self.task_checkins = Counter(
            "task_checkins",
            "Check-ins after successful runs, by outcome (ok, failed, dropped)",
            ["task", "outcome"],
            registry=r,
        )
        self.loop_heartbeat_age = Gauge(
            "scheduler_loop_heartbeat_age_seconds", "Seconds since the scheduler loop last woke up", registry=r
        )
        self.history_queue_depth = Gauge(
            "run_history_queue_depth", "Run-history records waiting to be stored (queued or being retried)", registry=r
        )
        self.history_dropped = Counter(
            "run_history_dropped",
            "Run-history records not stored, by reason (queue_full, refused, shutdown)",
            ["reason"],
            registry=r,
        )
        self.loop_alive = Gauge("scheduler_loop_alive", "1 while the scheduler loop thread runs", registry=r)
        self.messages_consumed = Counter("consumer_messages", "Kafka messages consumed", registry=r)
        self.events_stored = Counter("consumer_events_stored", "Events stored (new rows)", registry=r)
        self.duplicates = Counter("consumer_duplicates_skipped", "Replayed events already stored", registry=r)
        self.dead_lettered = Counter("consumer_dead_lettered", "Messages dead-lettered", ["reason"], registry=r)
        self.batch_seconds = Histogram(
            "consumer_batch_seconds", "Time to decode, handle and store one batch", buckets=BATCH_BUCKETS, registry=r
        )
        self.consumer_restarts = Counter("consumer_restarts", "Consumer thread restarts", registry=r)
        self.consumer_up = Gauge("consumer_running", "1 while the consumer thread is running", registry=r)
        self.consumer_crash_looping = Gauge("consumer_crash_looping", "1 while restarts exceed the limit", registry=r)
        self.consumer_lag = Gauge(
            "consumer_lag", "Messages behind the end of the partition", ["topic", "partition"], registry=r
        )
        # Per topic (consumers/running/topic_counts.py feeds /consumer the same numbers): a declared
        # topic's own rates and dead letters, which the totals above mix with every other topic's.
        # Incremented once per topic per stored batch, not per message.
        self.topic_events = Counter(
            "consumer_topic_events",
            "Messages of a topic by result (stored, duplicate, dead_lettered)",
            ["topic", "result"],
            registry=r,
        )
        self.topic_lag = Gauge(
            "consumer_topic_lag",
            "Messages behind, summed over the topic's partitions this replica consumes",
            ["topic"],
            registry=r,
        )

    def on_scrape(self, refresh: Callable[[], None]) -> None:
        """Registers a callback that refreshes computed gauges (heartbeat age, lag) before a scrape."""
        self._refreshers.append(refresh)

    def refresh(self) -> None:
        """Runs the scrape-time refresh callbacks."""
        for callback in self._refreshers:
            callback()
