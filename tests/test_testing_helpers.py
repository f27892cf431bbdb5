"""servicescheduler.testing: the helpers users test their own tasks and handlers with, exercised
the way the module's docstring tells users to (fake clock, run now, feed messages)."""

from __future__ import annotations

import json
import threading

import pytest

from servicescheduler import ServiceScheduler, TaskContext, every
from servicescheduler.testing import SimulationError, simulate


def build() -> tuple[ServiceScheduler, list[float]]:
    scheduler = ServiceScheduler(database_url="sqlite:///./never-used.db")
    seen: list[float] = []

    @scheduler.task("sync-prices", trigger=every(30).seconds)
    def sync_prices(ctx: TaskContext) -> None:
        seen.append(ctx.scheduled_for or 0.0)

    @scheduler.task("flaky", trigger=every(1).hours)
    def flaky(ctx: TaskContext) -> None:
        raise RuntimeError("feed down")

    @scheduler.handler("order.created")
    def on_order(batch, event, meta) -> None:
        batch.add_notification(event, meta, channel="log", recipient="ops")

    return scheduler, seen


def event(event_id: str, event_type: str = "order.created") -> bytes:
    return json.dumps({"id": event_id, "type": event_type, "data": {"n": 1}}).encode()


def test_advance_runs_each_slot_at_its_own_time_and_none_is_missed(tmp_path) -> None:
    scheduler, seen = build()
    with simulate(scheduler, database_url=f"sqlite:///{tmp_path / 't.db'}") as sim:
        start = sim.clock.now
        sim.advance(95)
        runs = sim.runs("sync-prices")
        assert sim.now.timestamp() == start + 95
    assert [run.outcome for run in runs] == ["success"] * 4  # 0 (start-up), 30, 60, 90 s
    assert seen == [start, start + 30, start + 60, start + 90]
    assert not (tmp_path / "never-used.db").exists()


def test_run_now_returns_the_recorded_outcome(tmp_path) -> None:
    scheduler, _ = build()
    with simulate(scheduler) as sim:
        run = sim.run_now("flaky")
        again = sim.run_now("flaky")  # the first run ended: the task is free again
    assert (run.outcome, run.cause) == ("error", "manual")
    assert "feed down" in (run.error or "") and again.run_id != run.run_id


def test_feed_passes_messages_through_decode_handlers_and_store(tmp_path) -> None:
    scheduler, _ = build()
    with simulate(scheduler) as sim:
        first = sim.feed([event("o-1"), event("o-1"), b"not json", event("u-1", "user.signed_up")])
        replay = sim.feed([event("o-1")])
    assert (first.stored, first.duplicates, first.dead_lettered) == (2, 1, 1)
    assert first.notifications_created == 1 and "invalid JSON" in first.dead_letter_reasons[0]
    assert (replay.stored, replay.duplicates, replay.notifications_created) == (0, 1, 0)


def test_a_run_that_never_ends_fails_the_test_instead_of_hanging(monkeypatch) -> None:
    import servicescheduler.testing as testing

    monkeypatch.setattr(testing, "RUN_WAIT_SECONDS", 0.5)
    release = threading.Event()
    scheduler = ServiceScheduler()
    # Never run yet, so due at start-up: the simulation's first step waits for it.
    scheduler.task("stuck", trigger=every(1).hours)(lambda: release.wait(10))
    try:
        with pytest.raises(SimulationError, match=r"runs still going after 0.5 s: \['stuck'\]"), simulate(scheduler):
            pass
    finally:
        release.set()
