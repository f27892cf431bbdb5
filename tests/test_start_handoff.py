"""A control call that starts a run now (trigger, enable) returns once the task's code has started.

While the request thread waits it needs no GIL, so the hand-offs to the loop and to the worker are
not queued behind the building of the HTTP response (benchmark 4). The wait is bounded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from servicescheduler.scheduler import START_HANDOFF_SECONDS, Scheduler
from servicescheduler.scheduling.registry import TaskRegistry
from servicescheduler.scheduling.triggers import every

PICKUP_DELAY = 0.02  # a worker slow to pick a run up (a busy machine), well inside the hand-off


def _slow_pickup(scheduler: Scheduler, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every run reaches its worker PICKUP_DELAY late."""
    submit = scheduler.executor.submit

    def late_submit(fn: Callable[..., Any], *args: Any) -> Any:
        def late(*inner: Any) -> Any:
            time.sleep(PICKUP_DELAY)
            return fn(*inner)

        return submit(late, *args)

    monkeypatch.setattr(scheduler.executor, "submit", late_submit)


def test_trigger_returns_once_the_run_has_started(make_scheduler, monkeypatch) -> None:
    started = threading.Event()
    registry = TaskRegistry()
    registry.register("manual", started.set, trigger=every(1).hours, enabled=False)
    scheduler = make_scheduler(registry)
    _slow_pickup(scheduler, monkeypatch)
    scheduler.trigger("manual")
    assert started.is_set()


def test_enable_returns_once_the_run_it_made_due_has_started(make_scheduler, monkeypatch) -> None:
    started = threading.Event()
    registry = TaskRegistry()
    registry.register("never-ran", started.set, trigger=every(1).hours, enabled=False)
    scheduler = make_scheduler(registry, run_loop=True)
    _slow_pickup(scheduler, monkeypatch)
    status = scheduler.set_enabled("never-ran", True)  # never ran: due at once
    assert started.is_set()
    assert status.enabled


def test_enable_without_a_run_due_now_does_not_wait(make_scheduler, monkeypatch) -> None:
    registry = TaskRegistry()
    registry.register("hourly", lambda: None, trigger=every(1).hours)
    scheduler = make_scheduler(registry, run_loop=True)
    assert scheduler.wait_idle(5)  # its start-up run
    scheduler.set_enabled("hourly", False)
    _slow_pickup(scheduler, monkeypatch)
    began = time.monotonic()
    scheduler.set_enabled("hourly", True)  # it ran a moment ago: next due in an hour
    assert time.monotonic() - began < START_HANDOFF_SECONDS
    assert scheduler._handoffs == {}


def test_the_wait_for_a_start_is_bounded(make_scheduler) -> None:
    release = threading.Event()
    registry = TaskRegistry()
    registry.register("blocker", lambda: release.wait(10), trigger=every(1).hours, enabled=False)
    registry.register("queued", lambda: None, trigger=every(1).hours, enabled=False)
    scheduler = make_scheduler(registry, worker_threads=1)
    try:
        scheduler.trigger("blocker")  # takes the only worker
        began = time.monotonic()
        scheduler.trigger("queued")  # waits for a worker: the call does not wait with it
        assert time.monotonic() - began < START_HANDOFF_SECONDS + 1
        assert scheduler.is_running("queued")
    finally:
        release.set()
    assert scheduler.wait_idle(5)
