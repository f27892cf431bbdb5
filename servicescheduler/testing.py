"""Helpers for testing code built on ServiceScheduler: no waiting, no broker, no server.

`simulate(scheduler)` runs your ServiceScheduler's tasks and handlers for real (the same engine,
executor, database writes and event store as in production) on a fake clock, in one process:

    from servicescheduler.testing import simulate

    def test_prices_sync_every_30_seconds(tmp_path):
        with simulate(scheduler, database_url=f"sqlite:///{tmp_path}/test.db") as sim:
            sim.advance(95)                                  # four slots: 0, 30, 60, 90 s
            runs = sim.runs("sync-prices")
        assert [run.outcome for run in runs] == ["success"] * 4

    def test_sync_reports_a_broken_feed(tmp_path):
        with simulate(scheduler, database_url=f"sqlite:///{tmp_path}/test.db") as sim:
            run = sim.run_now("sync-prices")                 # synchronous; returns its outcome
        assert run.outcome == "error" and "feed down" in run.error

    def test_orders_are_stored_once(tmp_path):
        with simulate(scheduler, database_url=f"sqlite:///{tmp_path}/test.db") as sim:
            result = sim.feed([ORDER, ORDER, b"not json"])    # decode -> handlers -> store
        assert (result.stored, result.duplicates, result.dead_lettered) == (1, 1, 1)

What is different from production, and why: the Kafka consumer and the cluster coordination are
off (`feed` drives the consumer's decode and store path directly; one process owns the schedule),
the built-in tasks are left out unless `builtins=True` (they would run on your fake hours too),
and time moves only when you call `advance`. Without `database_url`, a temporary SQLite file is
used and removed afterwards.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from servicescheduler.embedding import build_registry
from servicescheduler.service import Application
from servicescheduler.settings import settings_from
from servicescheduler.storage.db import Database
from servicescheduler.storage.history import run_rows

if TYPE_CHECKING:
    from servicescheduler.embedding import ServiceScheduler

# How long one step may wait for the runs it started (a task body sleeping in real time counts).
RUN_WAIT_SECONDS = 30.0
# `advance` stops after this many due items per call: a schedule that never catches up is a bug
# in the test (a 1 ms interval over a week), not a reason to spin for ever.
MAX_STEPS_PER_ADVANCE = 100_000
HISTORY_LIMIT = 500
DEFAULT_START = datetime(2030, 1, 1, tzinfo=UTC)


class SimulationError(AssertionError):
    """The simulation could not do what was asked (a run did not finish within its wait)."""


@dataclass(frozen=True)
class RunResult:
    """One recorded run, as GET /tasks/{name}/runs shows it."""

    run_id: str
    outcome: str
    cause: str
    scheduled_for: str | None
    started_at: str | None
    duration_ms: float | None
    error: str | None
    attempt: int = 1  # 2.. for a retry (cause `retry`)


@dataclass(frozen=True)
class FeedResult:
    """What feeding one batch of messages changed."""

    stored: int
    duplicates: int
    dead_lettered: int
    notifications_created: int
    dead_letter_reasons: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Message:
    """The fields of a Kafka record the decode path reads."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int


class _Topic:
    """Stands in for kafka-python's TopicPartition (the decode path reads these two fields)."""

    def __init__(self, topic: str, partition: int) -> None:
        self.topic = topic
        self.partition = partition


class FakeClock:
    """Epoch seconds that move only when told."""

    def __init__(self, start: datetime) -> None:
        self.now = start.timestamp()

    def __call__(self) -> float:
        return self.now


class Simulation:
    """A started ServiceScheduler on a fake clock (use `simulate(...)`)."""

    def __init__(self, application: Application, clock: FakeClock) -> None:
        self.application = application
        self.clock = clock
        self._offsets: dict[tuple[str, int], int] = {}

    @property
    def now(self) -> datetime:
        """The simulated time."""
        return datetime.fromtimestamp(self.clock.now, tz=UTC)

    @property
    def database(self) -> Database:
        """The simulation's database, for your own assertions."""
        return self.application.database

    def advance(self, seconds: float) -> None:
        """Moves time forward by `seconds`, running every slot that comes due on the way, each at
        its own time (so none counts as missed), and waits for those runs to finish."""
        engine = self.application.scheduler
        target = self.clock.now + seconds
        for _ in range(MAX_STEPS_PER_ADVANCE):
            due = engine.wake_deadline
            if due is None or due > target:
                break
            self.clock.now = max(self.clock.now, due)
            engine.tick(self.clock.now)
            self._wait()
        else:
            raise SimulationError(f"more than {MAX_STEPS_PER_ADVANCE} due items within {seconds} s")
        self.clock.now = target
        engine.tick(target)
        self._wait()

    def run_now(self, name: str) -> RunResult:
        """Runs task `name` now (as POST /tasks/{name}/run does) and returns its recorded run."""
        run_id = self.application.scheduler.trigger(name, actor="test")
        self._wait()
        for run in self.runs(name):
            if run.run_id == run_id:
                return run
        raise SimulationError(f"run {run_id} of {name!r} was not recorded")

    def runs(self, name: str) -> list[RunResult]:
        """Every recorded run of task `name`, oldest first (at most the newest 500)."""
        self._wait()
        rows = run_rows(self.database, name, HISTORY_LIMIT, None)
        return [_run_result(row) for row in reversed(rows)]

    def feed(
        self,
        values: Iterable[bytes | str | None],
        *,
        topic: str = "events",
        partition: int = 0,
        key: bytes | None = None,
    ) -> FeedResult:
        """Passes messages through the consumer's real path (decode, handlers, one transaction)
        as one batch at the next offsets of `topic`/`partition`, and returns what it changed."""
        from servicescheduler.consumers.decoding.intake import decode_batch  # needs kafka-python
        from servicescheduler.consumers.storing.store import store_batch

        settings = self.application.settings
        handlers = self.application.handlers
        if handlers is None:
            raise SimulationError("this simulation has no event handlers")
        first = self._offsets.get((topic, partition), 0)
        timestamp = int(self.clock.now * 1000)
        messages = [
            _Message(topic, partition, first + i, key, value.encode() if isinstance(value, str) else value, timestamp)
            for i, value in enumerate(values)
        ]
        self._offsets[(topic, partition)] = first + len(messages)
        records: dict[Any, list[Any]] = {_Topic(topic, partition): messages}
        topics = self.application.topics
        prepared, dead = decode_batch(
            records, max_bytes=settings.kafka_max_message_bytes, contracts=topics.as_dict() if topics else None
        )
        result = store_batch(
            self.database,
            prepared=prepared,
            dead=dead,
            registry=handlers,
            max_attempts=settings.kafka_max_attempts,
            value_cap=settings.kafka_dead_letter_value_cap_bytes,
        )
        return FeedResult(
            stored=result.events_stored,
            duplicates=result.duplicates,
            dead_lettered=len(result.dead),
            notifications_created=result.notifications_created,
            dead_letter_reasons=[row.reason for row in result.dead],
        )

    def _wait(self) -> None:
        if not self.application.scheduler.wait_idle(RUN_WAIT_SECONDS):
            running = self.application.scheduler.running_tasks()
            raise SimulationError(f"runs still going after {RUN_WAIT_SECONDS} s: {running}")


@contextmanager
def simulate(
    scheduler: ServiceScheduler,
    *,
    database_url: str | None = None,
    start: datetime = DEFAULT_START,
    builtins: bool = False,
) -> Iterator[Simulation]:
    """A started copy of `scheduler` on a fake clock at `start`; stopped on exit. See the module."""
    with tempfile.TemporaryDirectory(prefix="servicescheduler-test-") as scratch:
        overrides: dict[str, Any] = {
            "database_url": database_url or f"sqlite:///{Path(scratch) / 'test.db'}",
            "kafka_enabled": False,  # `feed` drives the consumer's path without a broker
            "cluster_enabled": False,  # one process owns the schedule; leases would use the real clock
        }
        if not builtins:
            overrides["builtin_tasks"] = ""
        settings = settings_from(**{**scheduler.settings.model_dump(), **overrides})
        clock = FakeClock(start)
        application = Application(
            settings,
            build_registry(settings, scheduler.tasks),
            handlers=scheduler.declared_handlers(),
            topics=scheduler.declared_topics(),  # `feed` to a declared topic decodes by its contract
            admin_token="simulation",
            clock=clock,
        )
        application.start(run_loop=False)
        simulation = Simulation(application, clock)
        try:
            application.scheduler.tick(clock.now)  # the start-up runs, as the loop's first wake-up
            simulation._wait()
            yield simulation
        finally:
            application.stop(timeout=RUN_WAIT_SECONDS)


def _run_result(row: dict[str, Any]) -> RunResult:
    return RunResult(
        run_id=row["run_id"],
        outcome=row["outcome"],
        cause=row["trigger"],
        scheduled_for=row["scheduled_for"],
        started_at=row["started_at"],
        duration_ms=row["duration_ms"],
        error=row["error"],
        attempt=row["attempt"],
    )
