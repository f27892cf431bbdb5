"""Retries: a run that ends `error` or `timeout` is attempted again after an exponential, jittered,
capped delay, each attempt its own run row (`attempt`, trigger `retry`); a pending retry shows in
the task JSON and the dashboard and is dropped (recorded `skipped`) when the task is disabled or
its next slot comes first; two replicas never both retry; a pending retry survives a restart
and a replica killed with -9."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from devtools.replicas import ServerProcess, epoch, wait_ready
from servicescheduler.scheduling.registry import TaskDefinitionError, TaskRegistry
from servicescheduler.scheduling.retries import RETRY_DELAY_CAP_SECONDS, jitter_for, retry_delay
from servicescheduler.scheduling.triggers import every
from servicescheduler.storage.db import Database
from servicescheduler.storage.history import run_rows
from servicescheduler.storage.models import TaskState
from servicescheduler.support.clock import iso
from tests.conftest import AUTH, wait_until

BACKOFF = 0.05  # the first retry waits 25-50 ms: the tests wait on conditions, not on the backoff


def _oldest_first(app: Any, task: str) -> list[dict[str, Any]]:
    return list(reversed(app.client.get(f"/tasks/{task}/runs", params={"limit": 100}).json()))


def _settled(app: Any, task: str, rows: int) -> list[dict[str, Any]]:
    """The task's history once it has `rows` final rows (the recorder writes a moment after the run)."""

    def done() -> list[dict[str, Any]] | None:
        runs = _oldest_first(app, task)
        return runs if len(runs) >= rows and all(run["outcome"] != "running" for run in runs) else None

    return wait_until(done, timeout=10)


# ----------------------------------------------------------------------------- the delay
def test_the_backoff_doubles_per_attempt_within_its_jitter_and_is_capped() -> None:
    # attempt a waits backoff * 2 ** (a - 2) * jitter, jitter in [0.5, 1]
    assert [retry_delay(a, 10, 1.0) for a in (2, 3, 4, 5)] == [10, 20, 40, 80]
    assert [retry_delay(a, 10, 0.5) for a in (2, 3, 4, 5)] == [5, 10, 20, 40]
    assert retry_delay(30, 10, 1.0) == RETRY_DELAY_CAP_SECONDS == 3600
    assert retry_delay(10_000, 10, 0.75) == 3600  # no float overflow for absurd attempts
    assert retry_delay(3, 10, 1.0, cap=15) == 15
    for bad in ((1, 10, 1.0), (2, 10, 0.4), (2, 10, 1.1)):
        with pytest.raises(ValueError):
            retry_delay(*bad)


def test_the_jitter_is_spread_over_its_range_and_reproducible_from_the_run_id() -> None:
    fractions = [jitter_for(f"run-{n}") for n in range(2000)]
    assert all(0.5 <= f <= 1.0 for f in fractions)
    assert min(fractions) < 0.52 and max(fractions) > 0.98  # spread over the whole range
    assert len({round(f, 3) for f in fractions}) > 400
    assert jitter_for("run-7") == jitter_for("run-7")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"retries": -1}, "retries must be an integer >= 0"),
        ({"retries": True}, "retries must be an integer >= 0"),
        ({"retries": 1.5}, "retries must be an integer >= 0"),
        ({"retries": 2, "retry_backoff": 0}, "retry_backoff must be a positive number"),
        ({"retries": 2, "retry_backoff": float("inf")}, "retry_backoff must be a positive number"),
        ({"retries": 2, "retry_backoff": "10"}, "retry_backoff must be a positive number"),
    ],
)
def test_a_bad_retry_declaration_fails_naming_the_task(options: dict[str, Any], message: str) -> None:
    with pytest.raises(TaskDefinitionError, match=f"^flaky: {message}"):
        TaskRegistry().register("flaky", lambda: None, trigger=every(1).hours, **options)


# ----------------------------------------------------------------------------- a live app
def test_a_task_failing_twice_then_succeeding_shows_attempts_1_to_3(live_app, make_settings, database_url) -> None:
    registry = TaskRegistry()
    calls = itertools.count(1)
    attempts_seen: list[int] = []

    @registry.task("flaky", trigger=every(1).hours, retries=3, retry_backoff=BACKOFF)
    def flaky(ctx) -> None:
        attempts_seen.append(ctx.attempt)
        if next(calls) <= 2:
            raise ConnectionError("transient")

    app = live_app(make_settings(database_url=database_url), registry)
    runs = _settled(app, "flaky", 3)
    assert [(r["attempt"], r["trigger"], r["outcome"]) for r in runs] == [
        (1, "startup", "error"),
        (2, "retry", "error"),
        (3, "retry", "success"),
    ]
    assert attempts_seen == [1, 2, 3]  # the task sees which attempt it is (TaskContext.attempt)
    # Each retry is scheduled for its due time, after the previous attempt ended plus the backoff.
    for previous, retry, attempt in zip(runs[:-1], runs[1:], (2, 3), strict=True):
        waited = epoch(retry["scheduled_for"]) - epoch(previous["finished_at"])
        assert BACKOFF * 2 ** (attempt - 2) * 0.5 - 0.001 <= waited <= BACKOFF * 2 ** (attempt - 2) + 0.001
    task = app.client.get("/tasks/flaky").json()
    assert task["retries"] == 3 and task["pending_retry"] is None
    assert task["last_run"]["attempt"] == 3 and task["stats"]["failures"] == 2 and task["stats"]["successes"] == 1
    # The grid stays on the task's slots: a retry's due time never becomes the stored anchor.
    with app.application.database.read_session() as session:
        anchor = session.get(TaskState, "flaky").last_run_scheduled_for
    assert iso(anchor) == runs[0]["scheduled_for"]
    metrics = app.client.get("/metrics").text
    assert 'task_retries_total{result="scheduled",task="flaky"} 2.0' in metrics
    assert 'task_runs_total{outcome="success",task="flaky"} 1.0' in metrics
    assert 'task_retries_total{result="exhausted",task="flaky"} 0.0' in metrics  # its last attempt succeeded
    page = app.client.get("/ui/tasks/flaky").text
    assert "attempt 3" in page and "up to 3 after a failed run, none pending" in page


def test_a_timeout_is_retried(live_app, make_settings) -> None:
    registry = TaskRegistry()
    calls = itertools.count(1)

    @registry.task("slowpoke", trigger=every(1).hours, timeout=0.1, retries=1, retry_backoff=BACKOFF)
    async def slowpoke() -> None:
        if next(calls) == 1:
            await asyncio.sleep(5)  # cancelled by its 0.1 s timeout

    app = live_app(make_settings(), registry)
    runs = _settled(app, "slowpoke", 2)
    assert [(r["attempt"], r["trigger"], r["outcome"]) for r in runs] == [
        (1, "startup", "timeout"),
        (2, "retry", "success"),
    ]


def test_retries_exhausted_the_task_waits_for_its_next_slot(live_app, make_settings) -> None:
    registry = TaskRegistry()
    registry.register("broken", lambda: 1 / 0, trigger=every(1).hours, retries=2, retry_backoff=BACKOFF)
    app = live_app(make_settings(), registry)
    runs = _settled(app, "broken", 3)
    assert [(r["attempt"], r["outcome"]) for r in runs] == [(1, "error"), (2, "error"), (3, "error")]
    assert app.client.get("/tasks/broken").json()["pending_retry"] is None
    # A 4th attempt would have been due 100-200 ms after the 3rd ended: give it twice that.
    time.sleep(0.4)
    assert len(_oldest_first(app, "broken")) == 3
    metrics = app.client.get("/metrics").text
    assert 'task_retries_total{result="scheduled",task="broken"} 2.0' in metrics
    assert 'task_retries_total{result="exhausted",task="broken"} 1.0' in metrics  # once: its 3rd attempt


def test_a_pending_retry_is_shown_and_dropped_when_the_task_is_disabled(live_app, make_settings) -> None:
    registry = TaskRegistry()
    registry.register("waiting", lambda: 1 / 0, trigger=every(1).hours, retries=3, retry_backoff=60)
    app = live_app(make_settings(), registry)
    pending = wait_until(lambda: app.client.get("/tasks/waiting").json()["pending_retry"], timeout=5)
    failed = _settled(app, "waiting", 1)[0]
    assert pending["attempt"] == 2
    waits = epoch(pending["due"]) - epoch(failed["finished_at"])
    assert 30 - 0.01 <= waits <= 60 + 0.01  # 60 s backoff, jitter in [0.5, 1]
    page = app.client.get("/ui/tasks/waiting").text
    assert 'id="pending-retry">attempt 2 of 4 due at' in page

    app.client.post("/tasks/waiting/disable", headers=AUTH).raise_for_status()
    assert app.client.get("/tasks/waiting").json()["pending_retry"] is None
    dropped = _settled(app, "waiting", 2)[1]
    assert (dropped["trigger"], dropped["attempt"], dropped["outcome"]) == ("retry", 2, "skipped")
    assert dropped["error"] == "the task was disabled" and dropped["scheduled_for"] == pending["due"]
    assert 'task_retries_total{result="dropped",task="waiting"} 1.0' in app.client.get("/metrics").text


def test_a_retry_due_after_the_next_slot_is_dropped_at_once(live_app, make_settings) -> None:
    registry = TaskRegistry()
    # Fails every second; its retry would wait 5-10 s: the next slot comes first, every time.
    registry.register("often", lambda: 1 / 0, trigger=every(1).seconds, retries=1, retry_backoff=10)
    app = live_app(make_settings(), registry)
    # Under load the startup run can outlast its second, so a `schedule` slot may be recorded
    # skipped between the two rows this test is about: look for each by its trigger.
    runs = wait_until(
        lambda: [r for r in _settled(app, "often", 2) if r["trigger"] == "retry"] and _oldest_first(app, "often")
    )
    assert (runs[0]["trigger"], runs[0]["attempt"], runs[0]["outcome"]) == ("startup", 1, "error")
    retry = next(r for r in runs if r["trigger"] == "retry")
    assert (retry["attempt"], retry["outcome"]) == (2, "skipped")
    assert "next scheduled slot" in retry["error"] and "comes first" in retry["error"]
    metrics = app.client.get("/metrics").text
    assert 'task_retries_total{result="dropped",task="often"}' in metrics
    assert 'task_retries_total{result="scheduled",task="often"}' not in metrics  # never queued


def test_a_manual_run_supersedes_a_pending_retry(live_app, make_settings) -> None:
    registry = TaskRegistry()
    registry.register("fixme", lambda: 1 / 0, trigger=every(1).hours, retries=1, retry_backoff=60)
    app = live_app(make_settings(), registry)
    wait_until(lambda: app.client.get("/tasks/fixme").json()["pending_retry"], timeout=5)
    assert app.client.post("/tasks/fixme/run", headers=AUTH).status_code == 202
    runs = _settled(app, "fixme", 3)
    dropped = next(r for r in runs if r["trigger"] == "retry")
    assert dropped["outcome"] == "skipped" and dropped["error"] == "a manual run started before this retry was due"


# ----------------------------------------------------------------------------- restarts
def _stored_runs(database: Database, task: str) -> list[dict[str, Any]]:
    """The task's history, oldest first, read from the database (the app may be stopped)."""
    return list(reversed(run_rows(database, task, 100, None)))


def _stored_retry(database: Database, task: str) -> tuple[int | None, str | None, str | None]:
    with database.read_session() as session:
        row = session.get(TaskState, task)
        return row.retry_attempt, iso(row.retry_due), row.retry_after_run


def test_a_pending_retry_survives_a_restart_and_runs_once_after_it(live_app, make_settings, database_url) -> None:
    settings = make_settings(database_url=database_url)
    registry = TaskRegistry()
    calls = itertools.count(1)
    attempts_seen: list[int] = []

    @registry.task("comeback", trigger=every(1).hours, retries=2, retry_backoff=2)
    def comeback(ctx) -> None:
        attempts_seen.append(ctx.attempt)
        if next(calls) == 1:
            raise ConnectionError("the first attempt fails")

    app = live_app(settings, registry)
    database = Database(settings)  # the test's own: it reads while the service is stopped
    pending = wait_until(lambda: app.client.get("/tasks/comeback").json()["pending_retry"], timeout=10)
    app.stop()  # the retry waits 1-2 s: stopped before it is due
    failed = _stored_runs(database, "comeback")
    assert [(r["attempt"], r["trigger"], r["outcome"]) for r in failed] == [(1, "startup", "error")]
    assert attempts_seen == [1]
    # Stored with the failed run's end: the next attempt, its due time, the run it retries.
    assert _stored_retry(database, "comeback") == (2, pending["due"], failed[0]["run_id"])

    again = live_app(settings, registry)
    runs = _settled(again, "comeback", 2)
    outcomes = [(r["attempt"], r["trigger"], r["outcome"]) for r in runs]
    assert outcomes == [(1, "startup", "error"), (2, "retry", "success")]
    assert runs[1]["scheduled_for"] == pending["due"]  # its due time kept: the same slot on every replica
    assert attempts_seen == [1, 2]
    assert wait_until(lambda: _stored_retry(database, "comeback") == (None, None, None), timeout=5)
    assert again.client.get("/tasks/comeback").json()["pending_retry"] is None
    time.sleep(0.3)  # nothing more: one run of the retry, no `skipped` row for it
    assert len(_oldest_first(again, "comeback")) == 2
    database.dispose()


def test_a_stored_retry_whose_next_slot_came_first_is_dropped_at_start_up(live_app, make_settings) -> None:
    settings = make_settings()
    registry = TaskRegistry()
    registry.register("late", lambda: 1 / 0, trigger=every(1).hours, retries=1, retry_backoff=60)
    app = live_app(settings, registry)
    database = Database(settings)
    wait_until(lambda: app.client.get("/tasks/late").json()["pending_retry"], timeout=5)
    app.stop()
    [failed] = _stored_runs(database, "late")
    # As if the run failed 70 minutes ago and the service was down since: the task's next slot
    # (an hour after the failed one) passed before the retry could run.
    shift = timedelta(minutes=70)
    with database.session() as session:
        row = session.get(TaskState, "late")
        row.last_run_scheduled_for -= shift
        row.retry_due -= shift
        due = iso(row.retry_due)
    again = live_app(settings, registry)
    runs = _settled(again, "late", 3)
    dropped = next(r for r in runs if r["trigger"] == "retry")
    assert (dropped["attempt"], dropped["outcome"], dropped["scheduled_for"]) == (2, "skipped", due)
    assert dropped["error"].startswith("the task's next scheduled slot (")
    assert dropped["error"].endswith("came before this retry")
    assert [r["run_id"] for r in runs].count(failed["run_id"]) == 1
    assert any(r["trigger"] == "startup" for r in runs[1:])  # the overdue task runs at once instead
    assert 'task_retries_total{result="dropped",task="late"} 1.0' in again.client.get("/metrics").text
    database.dispose()


# ----------------------------------------------------------------------------- two replicas
FLAKY_MODULE = """
from servicescheduler.scheduling import every, tasks

@tasks.task("flaky", trigger=every(1).seconds, retries=2, retry_backoff=0.05)
def flaky() -> None:
    raise ConnectionError("always fails")

@tasks.task("patient", trigger=every(1).hours, retries=1, retry_backoff=120)
def patient() -> None:
    raise ConnectionError("fails once an hour")
"""


@pytest.mark.slow
@pytest.mark.realtime
@pytest.mark.timeout(120)
def test_two_replicas_run_each_retry_once(tmp_path: Path, servers, cluster_database_url) -> None:
    (tmp_path / "retrytasks.py").write_text(FLAKY_MODULE)
    env = {"DATABASE_URL": cluster_database_url, "TASK_MODULES": "retrytasks", "CLUSTER_REPLICA_TTL_SECONDS": "3"}
    servers.extend(ServerProcess(tmp_path, f"replica-{index}", env) for index in range(2))
    wait_ready(servers)
    a, b = servers

    def history() -> list[dict[str, Any]] | None:
        runs = sorted(a.get("/tasks/flaky/runs", limit=500), key=lambda r: r["started_at"])
        return runs if sum(r["attempt"] == 3 and r["outcome"] == "error" for r in runs) >= 4 else None

    runs = wait_until(history, timeout=60, interval=0.2)
    ran = [r for r in runs if r["outcome"] == "error"]
    slots = Counter(r["scheduled_for"] for r in ran)
    assert max(slots.values()) == 1, "a slot or a retry ran twice"
    for retry in (r for r in ran if r["trigger"] == "retry"):
        # It follows the failure of the attempt before it, on the replica that ran that attempt,
        # after that attempt's backoff: it was planned there, and nowhere else.
        before = [p for p in ran if p["replica"] == retry["replica"] and p["finished_at"] <= retry["started_at"]]
        previous = before[-1]
        assert previous["attempt"] == retry["attempt"] - 1, (previous, retry)
        backoff = 0.05 * 2 ** (retry["attempt"] - 2)
        waited = epoch(retry["scheduled_for"]) - epoch(previous["finished_at"])
        assert backoff / 2 - 0.001 <= waited <= backoff + 0.001, (previous, retry)
    for given_up in (r for r in runs if r["trigger"] == "retry" and r["outcome"] != "error"):
        # Under load a slot may come first, or the other replica's run of it may still hold the lease.
        assert given_up["outcome"] == "skipped" and (
            "slot came before" in given_up["error"] or "still running" in given_up["error"]
        ), given_up
    assert all(r["attempt"] == 1 for r in runs if r["trigger"] != "retry")
    # Both replicas saw the schedule; only the one that ran a slot knew of its failure.
    by_id = {a.get("/cluster")["self"]: a, b.get("/cluster")["self"]: b}
    assert {r["replica"] for r in runs} <= set(by_id)

    # A retry pending on one replica is dropped when the task is disabled through the other.
    [failed] = wait_until(lambda: [r for r in a.get("/tasks/patient/runs") if r["outcome"] == "error"], timeout=10)
    holder = by_id[failed["replica"]]
    other = b if holder is a else a
    pending = holder.get("/tasks/patient")["pending_retry"]
    assert pending is not None and pending["attempt"] == 2
    assert other.get("/tasks/patient")["pending_retry"] is None  # only the replica that ran it knows
    other.post("/tasks/patient/disable").raise_for_status()
    disabled_at = time.time()

    def dropped() -> dict[str, Any] | None:
        rows = [r for r in other.get("/tasks/patient/runs") if r["trigger"] == "retry"]
        return rows[0] if rows else None

    row = wait_until(dropped, timeout=5)
    assert time.time() - disabled_at < 2.0
    assert (row["attempt"], row["outcome"], row["error"]) == (2, "skipped", "the task was disabled")
    assert row["replica"] == failed["replica"] and row["scheduled_for"] == pending["due"]
    assert holder.get("/tasks/patient")["pending_retry"] is None


# ----------------------------------------------------------------------------- simulate()
def test_simulate_runs_each_retry_at_its_due_time_on_the_fake_clock() -> None:
    from servicescheduler import ServiceScheduler
    from servicescheduler.testing import simulate

    scheduler = ServiceScheduler(database_url="sqlite:///./never-used.db")
    seen: list[tuple[int, float]] = []

    @scheduler.task("feed", trigger=every(1).hours, retries=2, retry_backoff=60)
    def feed(ctx) -> None:
        seen.append((ctx.attempt, ctx.scheduled_for))
        raise ConnectionError("feed down")

    with simulate(scheduler) as sim:
        start = sim.clock.now
        assert [run.attempt for run in sim.runs("feed")] == [1]
        sim.advance(300)  # 30-60 s, then 60-120 s: both within 5 minutes of fake time
        runs = sim.runs("feed")
    assert [(run.attempt, run.cause, run.outcome) for run in runs] == [
        (1, "startup", "error"),
        (2, "retry", "error"),
        (3, "retry", "error"),
    ]
    first, second = seen[1][1] - start, seen[2][1] - seen[1][1]
    assert 30 <= first <= 60 and 60 <= second <= 120, seen


SECOND_CHANCE_MODULE = """
from servicescheduler.scheduling import every, tasks

@tasks.task("second-chance", trigger=every(1).hours, retries=1, retry_backoff=6)
def second_chance(ctx) -> None:
    if ctx.attempt == 1:
        raise ConnectionError("the first attempt fails")
"""


@pytest.mark.slow
@pytest.mark.realtime
@pytest.mark.timeout(120)
def test_a_killed_replicas_pending_retry_runs_once_on_another(tmp_path: Path, servers, cluster_database_url) -> None:
    (tmp_path / "chancetasks.py").write_text(SECOND_CHANCE_MODULE)
    env = {"DATABASE_URL": cluster_database_url, "TASK_MODULES": "chancetasks", "CLUSTER_REPLICA_TTL_SECONDS": "3"}
    servers.extend(ServerProcess(tmp_path, f"replica-{index}", env) for index in range(2))
    wait_ready(servers)
    a, b = servers
    by_id = {a.get("/cluster")["self"]: a, b.get("/cluster")["self"]: b}
    # The failed attempt's row is stored: its pending retry with it (one transaction).
    [failed] = wait_until(
        lambda: [r for r in a.get("/tasks/second-chance/runs") if r["outcome"] == "error"], timeout=20, interval=0.05
    )
    holder = by_id[failed["replica"]]
    survivor = b if holder is a else a
    pending = holder.get("/tasks/second-chance")["pending_retry"]
    assert pending is not None and pending["attempt"] == 2
    holder.kill()  # kill -9 before the retry is due (3-6 s after the failure)
    assert time.time() < epoch(pending["due"]), "the retry was due before the kill: the machine is too slow"

    def retried() -> list[dict[str, Any]] | None:
        rows = [r for r in survivor.get("/tasks/second-chance/runs") if r["trigger"] == "retry"]
        return rows if rows and rows[0]["outcome"] != "running" else None

    [retry] = wait_until(retried, timeout=30, interval=0.1)
    assert (retry["attempt"], retry["outcome"], retry["scheduled_for"]) == (2, "success", pending["due"])
    assert retry["replica"] == survivor.get("/cluster")["self"]
    time.sleep(1.0)  # a second beat or more of the survivor: nothing re-plans it again
    runs = survivor.get("/tasks/second-chance/runs")
    assert [(r["attempt"], r["trigger"], r["outcome"]) for r in reversed(runs)] == [
        (1, "startup", "error"),
        (2, "retry", "success"),
    ]
    assert survivor.get("/tasks/second-chance")["pending_retry"] is None
