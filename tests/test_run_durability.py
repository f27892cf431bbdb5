"""Runs are never lost: a run's start is stored while it runs, a dead process's runs are recorded
`interrupted` at the next start-up, and a stop records every run that started."""

from __future__ import annotations

import threading
import time

from scheduling.registry import TaskRegistry
from scheduling.triggers import every
from storage.history import run_rows, store_history
from storage.records import RunRecord
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
        store_history(session, [RunRecord(run_id, task, "manual", None, time.time() - 5, outcome="running")], [])


def test_runs_left_running_by_a_dead_process_are_interrupted_at_startup(make_scheduler) -> None:
    release = threading.Event()
    release.set()
    earlier = make_scheduler(_blocking_registry(release, "block"))  # the process that will "die"
    earlier.stop(timeout=1)
    _leave_running_row(earlier.database, "block", "dead-process-run-1")
    scheduler = make_scheduler(_blocking_registry(release, "block"))
    rows = [r for r in _rows(scheduler, "block") if r["run_id"] == "dead-process-run-1"]
    assert len(rows) == 1
    assert rows[0]["outcome"] == "interrupted"
    assert "process" in rows[0]["error"]
    status = scheduler.status("block")
    assert status["stats"]["interrupted"] == 1
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
