"""A process-pool worker killed mid-run (OOM killer, kill -9) must not break later process runs."""

from __future__ import annotations

import os
import signal
import time

import pytest

from servicescheduler.scheduling.registry import TaskRegistry
from servicescheduler.scheduling.triggers import every
from tests.conftest import wait_until


def sleep_long() -> None:
    """A process task that runs until its worker is killed."""
    time.sleep(30)


def quick() -> int:
    """A process task that succeeds at once."""
    return os.getpid()


@pytest.mark.slow  # seconds of real waiting (a process pool, a timeout): out of the fast tier
def test_a_killed_process_worker_is_recorded_and_the_pool_rebuilt(make_scheduler) -> None:
    registry = TaskRegistry()
    registry.register("victim", sleep_long, trigger=every(1).hours, executor="process", enabled=False)
    registry.register("after", quick, trigger=every(1).hours, executor="process", enabled=False)
    scheduler = make_scheduler(registry, process_workers=1)
    scheduler.trigger("victim")
    pids = wait_until(scheduler.executor.child_pids, timeout=20)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)  # what the OOM killer does
    wait_until(lambda: not scheduler.is_running("victim"), timeout=10)
    last = scheduler.status("victim").last_run
    assert last.outcome == "error"
    assert "worker process died" in (last.error or "")
    for _ in range(2):  # the pool works again, run after run
        scheduler.trigger("after")
        wait_until(lambda: not scheduler.is_running("after"), timeout=30)
        assert scheduler.status("after").last_run.outcome == "success", scheduler.status("after")
    assert set(scheduler.executor.child_pids()).isdisjoint(pids)


def _niceness(pid: int) -> int:
    """Field 19 of /proc/<pid>/stat (after the parenthesised command name, which may hold spaces)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[16])  # fields[0] is field 3 (state)


@pytest.mark.slow  # spawns a real process pool (a fresh interpreter per worker)
@pytest.mark.parametrize("nice", [10, 0])
def test_process_pool_workers_run_at_the_configured_lower_priority(make_scheduler, nice: int) -> None:
    registry = TaskRegistry()
    registry.register("cpu", quick, trigger=every(1).hours, executor="process", enabled=False)
    scheduler = make_scheduler(registry, process_workers=1, process_pool_nice=nice)
    scheduler.trigger("cpu")
    # A run that succeeded went through a worker whose initializer had run; the worker stays.
    wait_until(lambda: not scheduler.is_running("cpu"), timeout=30)
    assert scheduler.status("cpu").last_run.outcome == "success"
    own = _niceness(os.getpid())
    assert [_niceness(pid) for pid in scheduler.executor.child_pids()] == [min(19, own + nice)]
