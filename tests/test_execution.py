"""Where runs happen: worker threads, fresh event loops, process workers, timeouts, shutdown."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest

from servicescheduler.scheduling.executor import run_in_fresh_loop
from servicescheduler.scheduling.registry import TaskRegistry
from servicescheduler.scheduling.triggers import every
from servicescheduler.vocabulary import RunOutcome
from tests.conftest import wait_until


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_async_runs_use_a_fresh_loop_each_and_leak_no_descriptors() -> None:
    loops: list[int] = []

    async def body() -> None:
        loops.append(id(asyncio.get_running_loop()))
        asyncio.get_running_loop().create_task(asyncio.sleep(10))  # left pending on purpose
        await asyncio.sleep(0)

    run_in_fresh_loop(body, (), None)  # warm-up: first loop creation opens lazily-made fds
    before = _open_fds()
    for _ in range(200):
        timed_out, _ = run_in_fresh_loop(body, (), 5)
        assert not timed_out
    assert _open_fds() - before <= 2
    assert len(loops) == 201


@pytest.mark.realtime
def test_async_task_is_cancelled_at_its_timeout(make_scheduler) -> None:
    cancelled = threading.Event()

    async def sleepy() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    registry = TaskRegistry()
    registry.register("sleepy", sleepy, trigger=every(1).hours, timeout=0.2)
    scheduler = make_scheduler(registry)
    assert scheduler.wait_idle(5)
    status = scheduler.status("sleepy")
    assert status.last_run.outcome == "timeout"
    assert status.stats["timeouts"] == 1
    assert cancelled.is_set()


def test_own_timeout_error_inside_a_task_is_an_error_not_a_timeout() -> None:
    async def raises() -> None:
        raise TimeoutError("upstream said timeout")

    with pytest.raises(TimeoutError):
        run_in_fresh_loop(raises, (), 5)


@pytest.mark.realtime
def test_sync_run_past_its_timeout_is_reported_overrunning_and_blocks_later_runs(make_scheduler) -> None:
    release = threading.Event()
    registry = TaskRegistry()
    registry.register("stuck", lambda: release.wait(10), trigger=every(1).seconds, timeout=0.1)
    scheduler = make_scheduler(registry, run_loop=True)
    wait_until(lambda: (run := scheduler.status("stuck").current_run) is not None and run.overrunning, timeout=3)
    wait_until(lambda: scheduler.status("stuck").stats["skipped"] >= 1, timeout=3)
    release.set()
    assert scheduler.wait_idle(5)
    last = scheduler.status("stuck")
    assert last.stats["timeouts"] >= 1


def cpu_burn() -> int:
    """A module-level CPU-bound task (process executor)."""
    total = 0
    for value in range(200_000):
        total += value * value
    return total


def _children(pid: int) -> set[int]:
    children: set[int] = set()
    for task in os.listdir(f"/proc/{pid}/task"):
        try:  # a thread may end between listdir and open
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                children.update(int(p) for p in handle.read().split())
        except FileNotFoundError:
            continue
    return children


@pytest.mark.slow  # seconds of real waiting (a process pool, a timeout): out of the fast tier
def test_process_executor_runs_cpu_work_and_leaves_no_child_after_stop(make_scheduler) -> None:
    registry = TaskRegistry()
    registry.register("burn", cpu_burn, trigger=every(1).hours, executor="process")
    scheduler = make_scheduler(registry)
    assert scheduler.wait_idle(30)
    assert scheduler.status("burn").last_run.outcome == "success"
    pids = scheduler.executor.child_pids()
    assert pids and all(pid != os.getpid() for pid in pids)
    scheduler.stop(timeout=5)
    remaining = _children(os.getpid()) & set(pids)
    assert remaining == set()


@pytest.mark.realtime
def test_stop_waits_for_a_running_task_and_reports_one_that_overruns(make_scheduler) -> None:
    finished = threading.Event()

    def short() -> None:
        time.sleep(0.3)
        finished.set()

    never = threading.Event()
    registry = TaskRegistry()
    registry.register("short", short, trigger=every(1).hours)
    registry.register("long", lambda: never.wait(20), trigger=every(1).hours)
    scheduler = make_scheduler(registry)
    wait_until(lambda: scheduler.is_running("short") and scheduler.is_running("long"))
    started = time.monotonic()
    unfinished = scheduler.stop(timeout=1.0)
    elapsed = time.monotonic() - started
    never.set()
    assert finished.is_set()  # stop waited for the short run
    assert unfinished == ["long"]
    assert 0.9 <= elapsed < 3.0


@pytest.mark.realtime
def test_a_slow_task_does_not_delay_another(make_scheduler) -> None:
    from servicescheduler.storage.history import run_rows

    registry = TaskRegistry()
    registry.register("slow", lambda: time.sleep(2.5), trigger=every(1).seconds)
    registry.register("fast", lambda: None, trigger=every(1).seconds)
    scheduler = make_scheduler(registry, run_loop=True)
    wait_until(lambda: scheduler.status("fast").stats["successes"] >= 3, timeout=5)
    assert scheduler.recorder.flush(5)
    runs = [r for r in run_rows(scheduler.database, "fast", 10, RunOutcome.SUCCESS) if r["trigger"] == "schedule"]
    assert len(runs) >= 2
    from datetime import datetime

    # "slow" holds a worker for 2.5 s and overlaps itself, yet "fast" starts on its grid.
    for run in runs:
        late = datetime.fromisoformat(run["started_at"]) - datetime.fromisoformat(run["scheduled_for"])
        assert 0 <= late.total_seconds() < 0.05, run
    wait_until(lambda: scheduler.status("slow").stats["skipped"] >= 1, timeout=3)
    fast = scheduler.status("fast").stats
    assert fast["skipped"] == 0 and fast["missed"] == 0
