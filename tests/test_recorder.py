"""The run-history recorder: a row the database refuses never blocks the others, transient failures
are retried, and its queue is bounded while the database is unavailable."""

from __future__ import annotations

import sqlite3
import threading
import time

from sqlalchemy import func, select

from servicescheduler.scheduling.launcher import new_run_id
from servicescheduler.scheduling.registry import TaskRegistry
from servicescheduler.scheduling.triggers import every
from servicescheduler.storage.history import run_rows
from servicescheduler.storage.models import TaskRun
from servicescheduler.storage.records import AuditRecord, RunRecord
from servicescheduler.vocabulary import RunCause, RunOutcome
from tests.conftest import wait_until

POISON = "bad \x00 byte, lone \ud800 surrogate"


def _poison() -> None:
    raise RuntimeError(POISON)


def _registry() -> TaskRegistry:
    registry = TaskRegistry()
    registry.register("poison", _poison, trigger=every(1).hours, enabled=False)
    registry.register("fine", lambda: None, trigger=every(1).hours, enabled=False)
    return registry


def _sample(scheduler, name: str, **labels: str) -> float | None:
    scheduler.metrics.refresh()
    return scheduler.metrics.registry.get_sample_value(name, labels)


def test_a_run_the_database_refuses_is_made_storable_and_blocks_nothing(database_url, make_scheduler) -> None:
    scheduler = make_scheduler(_registry(), database_url=database_url)
    poison = scheduler.trigger("poison")
    wait_until(lambda: not scheduler.is_running("poison"))
    # A label longer than the column (PostgreSQL refuses it) and a run queued with the poison one.
    long_label = scheduler.trigger("fine", label="x" * 40)
    assert scheduler.wait_idle(10), "the history is stuck behind a row the database refuses"
    fine = scheduler.trigger("fine")
    assert scheduler.wait_idle(10)
    [stored] = [r for r in run_rows(scheduler.database, "poison", 10, None) if r["run_id"] == poison]
    assert stored["outcome"] == "error"
    assert stored["error"].startswith("RuntimeError: bad ") and "\x00" not in stored["error"]
    outcomes = {r["run_id"]: r["outcome"] for r in run_rows(scheduler.database, "fine", 10, None)}
    assert outcomes == {long_label: "success", fine: "success"}


def test_a_record_that_can_never_be_stored_is_counted_and_dropped(make_scheduler) -> None:
    scheduler = make_scheduler(_registry())
    scheduler.recorder.record(AuditRecord(actor="plugin", action="odd", target="fine", detail={"ids": {1, 2}}))
    run = scheduler.trigger("fine")
    assert scheduler.wait_idle(10), "the history is stuck behind a record that cannot be stored"
    assert [r["run_id"] for r in run_rows(scheduler.database, "fine", 10, None)] == [run]
    assert _sample(scheduler, "run_history_dropped_total", reason="refused") == 1


def _count_runs(scheduler) -> int:
    with scheduler.database.read_session() as session:
        return session.scalar(select(func.count()).select_from(TaskRun))


def test_the_queue_is_bounded_while_the_database_is_locked_and_drains_after(make_scheduler, tmp_path) -> None:
    scheduler = make_scheduler(_registry(), sqlite_busy_timeout_ms=50, recorder_queue_limit=20)
    locker = sqlite3.connect(tmp_path / "test.db", isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")  # another process holding the write lock: a transient failure
    try:
        for _ in range(100):
            now = time.time()
            scheduler.recorder.record(RunRecord(new_run_id(), "fine", "manual", None, now, now, RunOutcome.SUCCESS))
        # Queued or being retried, never more than the limit: the rest is dropped and counted.
        assert _sample(scheduler, "run_history_queue_depth") == 20
        assert _sample(scheduler, "run_history_dropped_total", reason="queue_full") == 80
        assert _count_runs(scheduler) == 0
    finally:
        locker.rollback()
        locker.close()
    assert scheduler.recorder.flush(10), "the recorder did not drain after the lock was released"
    assert _count_runs(scheduler) == 20
    assert _sample(scheduler, "run_history_queue_depth") == 0


def test_a_full_queue_keeps_the_end_of_a_run_whose_start_it_holds(make_scheduler, tmp_path) -> None:
    release = threading.Event()
    registry = TaskRegistry()
    registry.register("slow", lambda: release.wait(10), trigger=every(1).hours, enabled=False)
    registry.register("late", lambda: None, trigger=every(1).hours, enabled=False)
    scheduler = make_scheduler(registry, sqlite_busy_timeout_ms=50, recorder_queue_limit=20)
    locker = sqlite3.connect(tmp_path / "test.db", isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")  # the database unavailable: the queue fills up
    try:
        slow = scheduler.trigger("slow")  # its start (`running`) is queued first
        for _ in range(100):
            now = time.time()
            scheduler.recorder.record(
                RunRecord(new_run_id(), "fine", RunCause.MANUAL, None, now, now, RunOutcome.SUCCESS)
            )
        dropped = _sample(scheduler, "run_history_dropped_total", reason="queue_full")
        assert dropped is not None and dropped > 80
        # A run starting now finds the queue full: its start is what gets dropped (and counted),
        # and with it, its end (no place was kept for it): it leaves no row at all.
        late = scheduler.trigger("late")
        wait_until(lambda: not scheduler.is_running("late"))
        assert _sample(scheduler, "run_history_dropped_total", reason="queue_full") == dropped + 3  # + its audit
        # Before: the end of `slow` was dropped too, and its stored row stayed `running` until a restart.
        release.set()
        wait_until(lambda: not scheduler.is_running("slow"))
        assert _sample(scheduler, "run_history_dropped_total", reason="queue_full") == dropped + 3
        assert _sample(scheduler, "run_history_queue_depth") == 20
    finally:
        release.set()
        locker.rollback()
        locker.close()
    assert scheduler.recorder.flush(10), "the recorder did not drain after the lock was released"
    [stored] = run_rows(scheduler.database, "slow", 10, None)
    assert (stored["run_id"], stored["outcome"]) == (slow, "success")
    assert [r["run_id"] for r in run_rows(scheduler.database, "late", 10, None) if r["run_id"] == late] == []
