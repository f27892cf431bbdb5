"""Runs are never lost: a run's start is stored while it runs, a dead process's runs are recorded
`interrupted` at the next start-up, and a stop records every run that started."""

from __future__ import annotations

import threading
import time

from servicescheduler.scheduling.registry import TaskRegistry
from servicescheduler.scheduling.triggers import every
from servicescheduler.storage.history import run_rows, store_history
from servicescheduler.storage.records import RunRecord
from servicescheduler.vocabulary import RunOutcome
from tests.conftest import AUTH, wait_until


def _blocking_registry(release: threading.Event, *names: str) -> TaskRegistry:
    registry = TaskRegistry()
    for name in names:
        # Disabled: no start-up run; the tests trigger runs themselves.
        registry.register(name, lambda: release.wait(20), trigger=every(1).hours, enabled=False)
    return registry


def _rows(scheduler, task: str) -> list[dict]:
    return run_rows(scheduler.database, task, 50, None)


def test_a_run_in_progress_is_stored_as_running_then_updated(make_scheduler) -> None:
    release = threading.Event()
    scheduler = make_scheduler(_blocking_registry(release, "block"))
    run_id = scheduler.trigger("block")
    started = time.monotonic()
    rows = wait_until(lambda: [r for r in _rows(scheduler, "block") if r["run_id"] == run_id], timeout=2)
    stored_after = time.monotonic() - started
    assert rows[0]["outcome"] == "running" and rows[0]["finished_at"] is None
    assert stored_after < 1.0, stored_after  # batched (~100 ms), not at the end of the run
    release.set()
    assert scheduler.wait_idle(5)
    final = [r for r in _rows(scheduler, "block") if r["run_id"] == run_id]
    assert len(final) == 1 and final[0]["outcome"] == "success" and final[0]["finished_at"] is not None


def _leave_running_row(database, task: str, run_id: str) -> None:
    """What a process killed mid-run leaves behind: the run's start row, never finished."""
    with database.session() as session:
        store_history(
            session, [RunRecord(run_id, task, "manual", None, time.time() - 5, outcome=RunOutcome.RUNNING)], []
        )


def test_runs_left_running_by_a_dead_process_are_interrupted_at_startup(make_scheduler, database_url) -> None:
    release = threading.Event()
    release.set()
    earlier = make_scheduler(_blocking_registry(release, "block"), database_url=database_url)  # will "die"
    earlier.stop(timeout=1)
    _leave_running_row(earlier.database, "block", "dead-process-run-1")
    scheduler = make_scheduler(_blocking_registry(release, "block"), database_url=database_url)
    rows = [r for r in _rows(scheduler, "block") if r["run_id"] == "dead-process-run-1"]
    assert len(rows) == 1
    assert rows[0]["outcome"] == "interrupted"
    assert "process" in rows[0]["error"]
    status = scheduler.status("block")
    assert status.stats["interrupted"] == 1
    assert scheduler.metrics.task_runs.labels("block", "interrupted")._value.get() == 1


def test_interrupted_runs_are_filterable_over_http(live_app, make_settings, migrated) -> None:
    settings = make_settings()
    _leave_running_row(migrated(settings.database_url), "block", "dead-process-run-2")
    release = threading.Event()
    release.set()
    app = live_app(settings, _blocking_registry(release, "block"))
    response = app.client.get("/tasks/block/runs", params={"outcome": "interrupted"}, headers=AUTH)
    assert response.status_code == 200, response.text
    assert [r["run_id"] for r in response.json()] == ["dead-process-run-2"]
    metrics = app.client.get("/metrics").text
    assert 'task_runs_total{outcome="interrupted",task="block"} 1.0' in metrics


def test_stop_records_runs_still_going_and_queued_runs_as_interrupted(make_scheduler) -> None:
    release = threading.Event()
    # One worker thread: "queued" waits behind "block" and is cancelled by the pool shutdown.
    scheduler = make_scheduler(_blocking_registry(release, "block", "queued"), worker_threads=1)
    first = scheduler.trigger("block")
    second = scheduler.trigger("queued")
    wait_until(lambda: [r for r in _rows(scheduler, "queued") if r["run_id"] == second], timeout=2)
    try:
        unfinished = scheduler.stop(timeout=0.5)
    finally:
        release.set()
    assert unfinished == ["block", "queued"]
    outcomes = {r["run_id"]: r["outcome"] for task in ("block", "queued") for r in _rows(scheduler, task)}
    assert outcomes == {first: "interrupted", second: "interrupted"}


# ----------------------------------------------------------------------------- calendar slots while down
def _minute_task(catch_up: bool, ran: list[str]) -> TaskRegistry:
    registry = TaskRegistry()
    options = {"catch_up": True} if catch_up else {}
    registry.register("minutely", lambda ctx: ran.append(ctx.trigger), trigger=every().minute.at(":00"), **options)
    return registry


def _slots(after: float, before: float) -> set[float]:
    """Whole minutes in (after, before]: the due times of every().minute.at(":00")."""
    first = (int(after) // 60 + 1) * 60
    return {float(t) for t in range(first, int(before) + 1, 60)}


def _went_down_after_a_run(make_scheduler, registry: TaskRegistry, minutes_ago: int, **settings) -> float:
    """A first instance ran the slot `minutes_ago` minutes back, then the service was down."""
    first = make_scheduler(registry, **settings)
    first.stop(timeout=1)
    anchor = (time.time() // 60 - minutes_ago) * 60
    with first.database.session() as session:
        store_history(
            session,
            [RunRecord("ran-before-outage", "minutely", "schedule", anchor, anchor, anchor + 1, RunOutcome.SUCCESS)],
            [],
        )
    return anchor


def _scheduled(rows: list[dict], outcome: str) -> list[float]:
    from datetime import datetime

    return sorted(datetime.fromisoformat(r["scheduled_for"]).timestamp() for r in rows if r["outcome"] == outcome)


def test_calendar_slots_that_passed_while_down_are_recorded_missed_once(make_scheduler, database_url) -> None:
    ran: list[str] = []
    anchor = _went_down_after_a_run(make_scheduler, _minute_task(False, ran), 3, database_url=database_url)
    before = time.time()
    scheduler = make_scheduler(_minute_task(False, ran), database_url=database_url)
    after = time.time()
    assert scheduler.wait_idle(5)
    missed = _scheduled(_rows(scheduler, "minutely"), "missed")
    assert _slots(anchor, before) <= set(missed) <= _slots(anchor, after) and len(missed) >= 3
    assert scheduler.status("minutely").stats["missed"] == len(missed)
    assert ran == []  # without catch_up nothing runs at start-up
    scheduler.stop(timeout=1)
    again = make_scheduler(_minute_task(False, ran), database_url=database_url)  # records no slot twice
    assert again.wait_idle(5)
    assert len(_scheduled(_rows(again, "minutely"), "missed")) == len(missed) + len(
        _slots(after, time.time()) - set(missed)
    )


def test_catch_up_runs_one_missed_slot_at_startup(make_scheduler) -> None:
    ran: list[str] = []
    _went_down_after_a_run(make_scheduler, _minute_task(True, ran), minutes_ago=3)
    caught_up_at = time.time()
    scheduler = make_scheduler(_minute_task(True, ran))
    assert scheduler.wait_idle(5)
    assert ran == ["catch-up"]
    rows = _rows(scheduler, "minutely")
    assert len(_scheduled(rows, "missed")) >= 3
    assert [r["trigger"] for r in rows if r["outcome"] == "success"].count("catch-up") == 1
    scheduler.stop(timeout=1)
    assert make_scheduler(_minute_task(True, ran)).wait_idle(5)
    # Caught up: the next start-up runs nothing, unless a new minute passed in between.
    assert ran == ["catch-up"] * (1 + bool(_slots(caught_up_at, time.time())))


def test_a_calendar_run_killed_mid_run_is_interrupted_and_caught_up(make_scheduler) -> None:
    ran: list[str] = []
    first = make_scheduler(_minute_task(True, ran))
    first.stop(timeout=1)
    anchor = (time.time() // 60 - 2) * 60
    killed = anchor + 60  # the next slot's run was in progress when the process was killed
    with first.database.session() as session:
        store_history(
            session,
            [
                RunRecord("ran", "minutely", "schedule", anchor, anchor, anchor + 1, RunOutcome.SUCCESS),
                RunRecord("killed", "minutely", "schedule", killed, killed, outcome=RunOutcome.RUNNING),
            ],
            [],
        )
    scheduler = make_scheduler(_minute_task(True, ran))
    assert scheduler.wait_idle(5)
    rows = _rows(scheduler, "minutely")
    assert [r["outcome"] for r in rows if r["run_id"] == "killed"] == ["interrupted"]
    assert killed not in _scheduled(rows, "missed")  # one row per slot: it is interrupted, not missed
    assert ran == ["catch-up"]


def test_start_up_finds_runs_in_progress_through_an_index(database_url, migrated) -> None:
    from sqlalchemy import inspect

    database = migrated(database_url)
    indexes = {index["name"]: index["column_names"] for index in inspect(database.engine).get_indexes("ss_task_runs")}
    # Partial on outcome = 'running': the start-up scan reads only those rows, not the whole history.
    assert indexes.get("ix_ss_task_runs_running") == ["outcome"]
