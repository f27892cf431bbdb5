"""Scheduling decisions driven by tick(): on time, on the grid, missed, skipped, isolated."""

from __future__ import annotations

import threading

import pytest
from prometheus_client import generate_latest

from servicescheduler.scheduling.registry import TaskContext, TaskRegistry
from servicescheduler.scheduling.triggers import Trigger, every
from servicescheduler.vocabulary import RunOutcome
from tests.conftest import FakeClock


def _registry(**tasks) -> TaskRegistry:
    registry = TaskRegistry()
    for name, (func, options) in tasks.items():
        registry.register(name, func, **options)
    return registry


def test_tick_dispatches_only_what_is_due(make_scheduler) -> None:
    clock = FakeClock()
    t0 = clock.now
    runs: list[tuple[str, float]] = []
    lock = threading.Lock()

    def make(name: str):
        def body(ctx) -> None:
            with lock:
                runs.append((name, round(ctx.scheduled_for - t0, 6)))

        return body

    registry = _registry(
        fast=(make("fast"), {"trigger": every(10).seconds}), slow=(make("slow"), {"trigger": every(25).seconds})
    )
    scheduler = make_scheduler(registry, clock=clock)
    assert scheduler.wait_idle(5)
    assert sorted(runs) == [("fast", 0.0), ("slow", 0.0)]  # never ran before: due at start-up
    runs.clear()

    # Due at +10 s; runs are handed to a worker 2 ms early, so the loop sleeps until +9.998 s.
    assert scheduler.tick(clock.advance(9.99)) == pytest.approx(0.008, abs=1e-6)
    assert scheduler.wait_idle(5)
    assert runs == []
    scheduler.tick(clock.advance(0.01))
    assert scheduler.wait_idle(5)
    assert runs == [("fast", 10.0)]
    scheduler.tick(clock.advance(15))
    assert scheduler.wait_idle(5)
    assert sorted(runs) == [("fast", 10.0), ("fast", 20.0), ("slow", 25.0)]
    status = scheduler.status("fast")
    assert status.stats["successes"] == 3 and status.stats["missed"] == 0


def test_grid_does_not_drift_with_a_slow_body() -> None:
    trigger = Trigger.from_job(every(1).seconds)
    due = 1000.0
    for _ in range(60):
        finished = due + 0.1  # the body takes 100 ms
        due = trigger.next_due(due, finished)
    assert due == pytest.approx(1060.0)


def test_scheduler_keeps_start_to_start_grid_when_the_body_is_slow(make_scheduler) -> None:
    clock = FakeClock()
    registry = _registry(task=(lambda: clock.advance(0.4), {"trigger": every(1).seconds}))
    scheduler = make_scheduler(registry, clock=clock)  # start-up run at t0, its body takes 0.4 s
    t0 = 1_800_000_000.0
    assert scheduler.wait_idle(5)
    dues = []
    for _ in range(5):
        due = _due(scheduler, "task")
        dues.append(due - t0)
        clock.now = due
        scheduler.tick()
        assert scheduler.wait_idle(5)
    assert scheduler.status("task").stats["successes"] == 6
    # Start-to-start: every due time is t0 + k seconds although each body took 0.4 s.
    assert dues == pytest.approx([1.0, 2.0, 3.0, 4.0, 5.0], abs=1e-6)


def _due(scheduler, name: str) -> float:
    return scheduler.next_due(name)


def test_late_slot_is_recorded_missed_and_next_run_is_the_next_grid_point(make_scheduler) -> None:
    clock = FakeClock()
    calls: list[float] = []
    registry = _registry(task=(lambda: calls.append(clock.now), {"trigger": every(10).seconds}))
    scheduler = make_scheduler(registry, clock=clock)
    assert scheduler.wait_idle(5)
    first_due = _due(scheduler, "task")
    scheduler.tick(clock.advance(10 + 35))  # the process was frozen for 35 s past the slot
    assert scheduler.wait_idle(5)
    status = scheduler.status("task")
    assert status.stats["missed"] == 1
    assert status.last_run.outcome == "missed"
    assert len(calls) == 1  # only the start-up run: no burst of catch-up runs
    assert _due(scheduler, "task") == pytest.approx(first_due + 40)


def test_overlapping_run_is_skipped_and_counted(make_scheduler) -> None:
    clock = FakeClock()
    release = threading.Event()
    registry = _registry(task=(lambda: release.wait(10), {"trigger": every(10).seconds}))
    scheduler = make_scheduler(registry, clock=clock)
    assert scheduler.is_running("task")
    scheduler.tick(clock.advance(10))
    scheduler.tick(clock.advance(10))
    status = scheduler.status("task")
    assert status.stats["skipped"] == 2
    assert status.running is True
    release.set()
    assert scheduler.wait_idle(5)
    assert scheduler.status("task").stats["successes"] == 1


def test_exception_is_isolated_recorded_and_the_task_keeps_its_schedule(make_scheduler) -> None:
    clock = FakeClock()
    other: list[int] = []

    def boom() -> None:
        raise ValueError("bad input 42")

    registry = _registry(
        boom=(boom, {"trigger": every(5).seconds}), other=(lambda: other.append(1), {"trigger": every(5).seconds})
    )
    scheduler = make_scheduler(registry, clock=clock)
    assert scheduler.wait_idle(5)
    scheduler.tick(clock.advance(5))
    assert scheduler.wait_idle(5)
    status = scheduler.status("boom")
    assert status.stats["failures"] == 2
    assert status.last_run.error == "ValueError: bad input 42"
    assert status.next_run_at is not None
    assert len(other) == 2
    history = scheduler.database
    from servicescheduler.storage.history import run_rows

    rows = run_rows(history, "boom", 10, RunOutcome.ERROR)
    assert len(rows) == 2 and rows[0]["error"] == "ValueError: bad input 42"


def test_disabled_task_has_no_next_run_and_is_not_dispatched(make_scheduler) -> None:
    clock = FakeClock()
    calls: list[int] = []
    registry = _registry(task=(lambda: calls.append(1), {"trigger": every(5).seconds, "enabled": False}))
    scheduler = make_scheduler(registry, clock=clock)
    assert scheduler.status("task").next_run_at is None
    scheduler.tick(clock.advance(60))
    assert scheduler.wait_idle(5)
    assert calls == []
    run_id = scheduler.trigger("task")  # a manual run works even when disabled
    assert scheduler.wait_idle(5)
    assert calls == [1] and scheduler.status("task").last_run.run_id == run_id


def test_wake_up_cost_does_not_scan_all_tasks(make_scheduler, monkeypatch) -> None:
    clock = FakeClock()
    registry = TaskRegistry()
    for index in range(500):
        registry.register(f"idle-{index}", lambda: None, trigger=every(1).days, run_at_start=False)
    registry.register("busy", lambda: None, trigger=every(10).seconds)
    scheduler = make_scheduler(registry, clock=clock)
    assert scheduler.wait_idle(20)
    # Every task ran once at start-up (never ran before); now only "busy" is due, in 10 s.
    evaluated: list[int] = []
    original = Trigger.next_due

    def counting(self: Trigger, previous_due: float | None, now: float) -> float | None:
        evaluated.append(1)
        return original(self, previous_due, now)

    monkeypatch.setattr(Trigger, "next_due", counting)
    delay = scheduler.tick(clock.advance(1))
    assert evaluated == []  # a wake-up with nothing due looks at no task at all
    assert delay == pytest.approx(9 - 0.002, abs=0.01)
    scheduler.tick(clock.advance(9))
    assert scheduler.wait_idle(5)
    assert len(evaluated) == 1  # one due task: one trigger evaluation, not 501
    assert scheduler.agenda_size() <= 4 * 501 + 64


def test_reenabling_keeps_the_grid_unless_the_task_is_overdue(make_scheduler) -> None:
    clock = FakeClock()
    calls: list[float] = []
    registry = _registry(task=(lambda ctx: calls.append(ctx.scheduled_for), {"trigger": every(60).seconds}))
    scheduler = make_scheduler(registry, clock=clock)
    assert scheduler.wait_idle(5)
    t0 = clock.now
    scheduler.set_enabled("task", False)
    clock.advance(10)
    status = scheduler.set_enabled("task", True)  # flapping: no extra run, same grid
    scheduler.tick()
    assert scheduler.wait_idle(5)
    assert calls == [t0]
    assert _due(scheduler, "task") == pytest.approx(t0 + 60)
    scheduler.set_enabled("task", False)
    clock.advance(120)
    scheduler.set_enabled("task", True)  # last run is older than the interval: due at once
    scheduler.tick()
    assert scheduler.wait_idle(5)
    assert calls == [t0, t0 + 130]
    assert status.enabled is True


def test_reschedule_takes_effect_at_once_on_the_same_grid(make_scheduler) -> None:
    clock = FakeClock()
    registry = _registry(task=(lambda: None, {"trigger": every(1).hours}))
    scheduler = make_scheduler(registry, clock=clock)
    assert scheduler.wait_idle(5)
    t0 = clock.now
    clock.advance(30)
    status = scheduler.reschedule("task", 45)
    assert status.schedule == "every 45 seconds"
    assert _due(scheduler, "task") == pytest.approx(t0 + 45)
    assert scheduler.tick() == pytest.approx(15 - 0.002, abs=1e-6)  # the loop was woken to re-plan


def test_request_run_is_coalesced_while_a_run_is_in_progress(make_scheduler) -> None:
    release = threading.Event()
    release.set()
    calls: list[str] = []

    def task(ctx: TaskContext) -> None:
        calls.append(ctx.trigger)
        release.wait(10)

    registry = _registry(task=(task, {"trigger": every(1).hours}))
    scheduler = make_scheduler(registry)
    assert scheduler.wait_idle(5) and calls == ["startup"]
    release.clear()
    assert scheduler.request_run("task") is True
    assert [scheduler.request_run("task") for _ in range(5)] == [False] * 5
    release.set()
    wait_until_idle = scheduler.wait_idle(5)
    assert wait_until_idle and calls == ["startup", "event", "event"]  # five requests, one follow-up run


def test_event_requests_for_a_disabled_task_are_dropped_and_counted(make_scheduler) -> None:
    release = threading.Event()
    release.set()
    calls: list[str] = []

    def task(ctx: TaskContext) -> None:
        calls.append(ctx.trigger)
        release.wait(10)

    registry = _registry(task=(task, {"trigger": every(1).hours, "enabled": False}))
    scheduler = make_scheduler(registry)
    assert [scheduler.request_run("task") for _ in range(3)] == [False] * 3
    assert scheduler.wait_idle(5) and calls == []
    # A follow-up requested while a manual run goes on is dropped too: the task is disabled.
    release.clear()
    scheduler.trigger("task")
    assert scheduler.request_run("task") is False
    release.set()
    assert scheduler.wait_idle(5) and calls == ["manual"]
    assert scheduler.status("task").run_requests_dropped == 4
    text = generate_latest(scheduler.metrics.registry).decode()
    assert 'task_run_requests_dropped_total{task="task"} 4.0' in text


def test_a_follow_up_run_requested_before_disable_is_dropped(make_scheduler) -> None:
    release = threading.Event()
    calls: list[str] = []

    def task(ctx: TaskContext) -> None:
        calls.append(ctx.trigger)
        release.wait(10)

    registry = _registry(task=(task, {"trigger": every(1).hours}))
    scheduler = make_scheduler(registry)  # the start-up run is going on (held by `release`)
    assert scheduler.request_run("task") is False  # coalesced: to follow the current run
    scheduler.set_enabled("task", False)
    release.set()
    assert scheduler.wait_idle(5) and calls == ["startup"]
    assert scheduler.status("task").run_requests_dropped == 1


def test_a_scheduled_run_handed_over_early_does_not_start_once_disabled(make_scheduler) -> None:
    calls: list[str] = []
    release = threading.Event()

    def job(ctx: TaskContext) -> None:
        calls.append(ctx.trigger)

    registry = TaskRegistry()
    registry.register("blocker", lambda: release.wait(10), trigger=every(1).hours)
    registry.register("job", job, trigger=every(10).seconds, enabled=False)
    clock = FakeClock()
    # One worker, held by "blocker": "job" waits after its hand-off, as a run handed over early does.
    scheduler = make_scheduler(registry, clock=clock, worker_threads=1)
    scheduler.set_enabled("job", True)  # never ran: due at once
    scheduler.tick()
    scheduler.set_enabled("job", False)
    release.set()
    assert scheduler.wait_idle(5)
    assert calls == []
    last = scheduler.status("job").last_run
    assert last.outcome == "skipped" and "disabled before this run started" in last.error
