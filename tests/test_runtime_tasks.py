"""Tasks created, changed and deleted at runtime, through the HTTP API of the real app and the
Python API, on SQLite and PostgreSQL: POST /tasks from a declared function, PATCH between interval
and cron, DELETE of runtime tasks only, all persisted and audited."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import func, select

from servicescheduler.scheduling.errors import InvalidTask, TaskConflict
from servicescheduler.scheduling.registry import TaskContext, TaskDefinitionError, TaskRegistry
from servicescheduler.scheduling.triggers import cron, every
from servicescheduler.storage.db import Database
from servicescheduler.storage.models import TaskRun
from tests.conftest import AUTH, wait_until


class Reports:
    """A runtime function's calls: (task, region, copies) per run."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int]] = []
        self.lock = threading.Lock()

    def registry(self) -> TaskRegistry:
        registry = TaskRegistry()
        registry.register("job", lambda: None, trigger=every(1).hours, description="declared in code")

        @registry.function("send-report")
        def send_report(ctx: TaskContext, *, region: str, copies: int = 1) -> None:
            """Sends one region's report."""
            with self.lock:
                self.calls.append((ctx.task, region, copies))

        return registry

    def of(self, task: str) -> list[tuple[str, str, int]]:
        with self.lock:
            return [call for call in self.calls if call[0] == task]


def _create(app: Any, **body: Any) -> Any:
    payload = {"name": "report-eu", "function": "send-report", "trigger": {"interval_seconds": 1}}
    return app.client.post("/tasks", json={**payload, **body}, headers=AUTH)


def test_post_creates_a_task_that_runs_with_its_kwargs_and_survives_restart(
    live_app, make_settings, database_url
) -> None:
    reports = Reports()
    settings = make_settings(database_url=database_url)
    app = live_app(settings, reports.registry())
    created = _create(app, kwargs={"region": "eu", "copies": 2}, description="EU report")
    assert created.status_code == 201, created.text
    task = created.json()
    assert set(task) == set(app.client.get("/tasks/report-eu").json())  # the shape of GET /tasks/{name}
    assert (task["origin"], task["function"]) == ("runtime", "send-report")
    assert task["kwargs"] == {"region": "eu", "copies": 2}
    assert (task["trigger"], task["schedule"]) == ({"interval_seconds": 1}, "every second")
    assert task["description"] == "EU report"
    wait_until(lambda: reports.of("report-eu"))
    assert reports.of("report-eu")[0] == ("report-eu", "eu", 2)
    audit = app.client.get("/audit").json()[0]
    assert (audit["action"], audit["target"], audit["actor"]) == ("create", "report-eu", "admin")
    assert audit["detail"]["kwargs"] == {"region": "eu", "copies": 2}
    assert app.client.get("/tasks/job").json()["origin"] == "code"
    function = {"name": "send-report", "parameters": "*, region: str, copies: int = 1"}
    assert app.client.get("/functions").json() == [function | {"description": "Sends one region's report."}]
    app.stop()

    again = live_app(settings, reports.registry())
    assert again.client.get("/tasks/report-eu").json()["kwargs"] == {"region": "eu", "copies": 2}
    seen = len(reports.of("report-eu"))
    wait_until(lambda: len(reports.of("report-eu")) > seen)


@pytest.mark.parametrize(
    "body,reason",
    [
        ({"function": "nope"}, "'nope' is not a declared runtime function (functions: send-report)"),
        ({"kwargs": {}}, "missing a required argument: 'region'"),
        ({"kwargs": {"region": "eu", "colour": "red"}}, "unexpected keyword argument 'colour'"),
        ({"kwargs": {"ctx": 1, "region": "eu"}}, "'ctx' is the TaskContext of send-report"),
        ({"kwargs": {"region": "eu", "copies": "two"}}, "'copies' of send-report: Input should be a valid integer"),
        ({"trigger": {"cron": "0 25 * * *"}, "kwargs": {"region": "eu"}}, "hour"),
        ({"trigger": {"cron": "0 3 * * *", "tz": "Mars/Base"}, "kwargs": {"region": "eu"}}, "unknown time zone"),
        ({"trigger": {"interval_seconds": 0}, "kwargs": {"region": "eu"}}, "interval_seconds"),
        ({"trigger": {"at": "03:00"}, "kwargs": {"region": "eu"}}, "trigger"),
        ({"name": "Bad Name", "kwargs": {"region": "eu"}}, "name"),
        ({"enabled": "yes", "kwargs": {"region": "eu"}}, "enabled"),
        ({"retries": -1, "kwargs": {"region": "eu"}}, "retries"),
        ({"retry_backoff": 0, "kwargs": {"region": "eu"}}, "retry_backoff"),
    ],
)
def test_post_rejects_what_does_not_fit_with_422_and_the_reason(live_app, make_settings, body, reason) -> None:
    app = live_app(make_settings(), Reports().registry())
    response = _create(app, **body)
    assert response.status_code == 422, response.text
    assert reason in response.json()["detail"]
    assert app.client.get("/tasks/report-eu").status_code == 404


def test_name_clashes_answer_409_and_delete_keeps_history(live_app, make_settings, database_url) -> None:
    reports = Reports()
    app = live_app(make_settings(database_url=database_url), reports.registry())
    declared = _create(app, name="job", kwargs={"region": "eu"})
    assert declared.status_code == 409 and "exists already" in declared.json()["detail"]
    assert _create(app, kwargs={"region": "eu"}).status_code == 201
    taken = _create(app, kwargs={"region": "us"})
    assert taken.status_code == 409 and "'report-eu' exists already" in taken.json()["detail"]
    wait_until(lambda: reports.of("report-eu"))

    refused = app.client.delete("/tasks/job", headers=AUTH)
    assert refused.status_code == 409
    assert refused.json()["detail"] == "task 'job' is declared in code; disable it instead"
    assert app.client.delete("/tasks/report-eu").status_code == 401
    assert app.client.delete("/tasks/report-eu", headers=AUTH).status_code == 204
    deleted_at = len(reports.of("report-eu"))
    assert app.client.get("/tasks/report-eu").status_code == 404
    assert app.client.delete("/tasks/report-eu", headers=AUTH).status_code == 404
    assert "report-eu" not in [task["name"] for task in app.client.get("/tasks").json()]
    database = Database(make_settings(database_url=database_url))
    try:
        wait_until(lambda: _successes(database, "report-eu") >= deleted_at)  # the recorder writes after the run ends
    finally:
        database.dispose()
    audit = [(entry["action"], entry["target"]) for entry in app.client.get("/audit").json()[:2]]
    assert audit == [("delete", "report-eu"), ("create", "report-eu")]

    # The name is free again: created anew, with other arguments and a fresh state.
    again = _create(app, kwargs={"region": "us"}, trigger={"cron": "0 3 * * *", "tz": "America/New_York"})
    assert again.status_code == 201, again.text
    assert again.json()["schedule"] == "cron '0 3 * * *' America/New_York"
    assert again.json()["stats"]["runs"] >= deleted_at  # history by name stays with the name


def _successes(database: Database, task: str) -> int:
    with database.read_session() as session:
        finished = select(func.count()).select_from(TaskRun).where(TaskRun.task == task, TaskRun.outcome == "success")
        return int(session.scalar(finished) or 0)


def test_patch_switches_between_interval_and_cron_and_survives_restart(live_app, make_settings, database_url) -> None:
    settings = make_settings(database_url=database_url)
    reports = Reports()
    app = live_app(settings, reports.registry())
    to_cron = app.client.patch("/tasks/job", json={"trigger": {"cron": "*/5 * * * * *", "tz": "UTC"}}, headers=AUTH)
    assert to_cron.status_code == 200, to_cron.text
    task = to_cron.json()
    assert (task["schedule"], task["trigger"]) == ("cron '*/5 * * * * *' UTC", {"cron": "*/5 * * * * *", "tz": "UTC"})
    assert task["interval_seconds"] is None
    assert app.client.get("/audit").json()[0]["detail"] == {"cron": "*/5 * * * * *", "tz": "UTC"}
    for bad, reason in [
        ({}, "give either interval_seconds or trigger"),
        ({"interval_seconds": 5, "trigger": {"interval_seconds": 5}}, "give either"),
        ({"trigger": {"cron": "61 * * * *"}}, "minute"),
    ]:
        response = app.client.patch("/tasks/job", json=bad, headers=AUTH)
        assert response.status_code == 422 and reason in response.json()["detail"], response.text
    app.stop()

    again = live_app(settings, reports.registry())
    assert again.client.get("/tasks/job").json()["trigger"] == {"cron": "*/5 * * * * *", "tz": "UTC"}
    back = again.client.patch("/tasks/job", json={"trigger": {"interval_seconds": 120}}, headers=AUTH).json()
    assert (back["schedule"], back["interval_seconds"]) == ("every 120 seconds", 120)
    assert back["trigger"] == {"interval_seconds": 120}
    # A runtime task's trigger is patched the same way.
    assert _create(again, kwargs={"region": "eu"}, trigger={"interval_seconds": 3600}).status_code == 201
    berlin = {"trigger": {"cron": "0 3 * * *", "tz": "Europe/Berlin"}}
    patched = again.client.patch("/tasks/report-eu", json=berlin, headers=AUTH)
    assert patched.json()["schedule"] == "cron '0 3 * * *' Europe/Berlin"


def test_python_api_adds_and_removes_tasks_as_the_http_api_does(live_app, make_settings) -> None:
    reports = Reports()
    app = live_app(make_settings(), reports.registry())
    service = app.service
    task = service.add_task("report-us", "send-report", every(1).seconds, kwargs={"region": "us"}, actor="ops")
    assert (task["origin"], task["trigger"]) == ("runtime", {"interval_seconds": 1})
    wait_until(lambda: reports.of("report-us"))
    nightly = service.add_task("nightly", "send-report", cron("0 3 * * *", tz="Asia/Tokyo"), kwargs={"region": "jp"})
    assert nightly["trigger"] == {"cron": "0 3 * * *", "tz": "Asia/Tokyo"}
    with pytest.raises(InvalidTask, match="cron"):
        service.add_task("hourly", "send-report", every().day.at("03:00"), kwargs={"region": "eu"})
    with pytest.raises(TaskConflict):
        service.add_task("report-us", "send-report", every(5).seconds, kwargs={"region": "us"})
    with pytest.raises(TaskConflict, match="declared in code"):
        service.remove_task("job")
    service.remove_task("report-us", actor="ops")
    assert "report-us" not in app.scheduler.names()
    entries = [(e["actor"], e["action"], e["target"]) for e in app.client.get("/audit").json()[:3]]
    assert entries == [("ops", "delete", "report-us"), ("python", "create", "nightly"), ("ops", "create", "report-us")]


def test_runtime_functions_are_checked_at_declaration() -> None:
    registry = TaskRegistry()
    with pytest.raises(TaskDefinitionError, match="takes the TaskContext"):
        registry.add_function("bare", lambda: None)
    with pytest.raises(TaskDefinitionError, match="keyword arguments"):
        registry.add_function("positional", lambda ctx, region: None)
    registry.add_function("fine", lambda ctx, *, region="eu": None)
    with pytest.raises(TaskDefinitionError, match="already declared"):
        registry.add_function("fine", lambda ctx: None)


def test_a_run_in_progress_finishes_and_is_recorded_after_its_task_is_deleted(make_scheduler) -> None:
    from servicescheduler.storage.history import run_rows
    from tests.conftest import FakeClock

    started, release = threading.Event(), threading.Event()
    registry = TaskRegistry()

    @registry.function("hold")
    def hold(ctx: TaskContext, *, seconds: float) -> None:
        started.set()
        release.wait(seconds)

    clock = FakeClock()
    scheduler = make_scheduler(registry, clock=clock, run_loop=False)
    scheduler.add_task("held", "hold", {"interval_seconds": 10}, kwargs={"seconds": 10})
    scheduler.tick(clock.advance(10))  # its first slot, one interval after creation
    assert started.wait(5)
    scheduler.remove_task("held")
    assert scheduler.names() == [] and scheduler.running_tasks() == []
    assert scheduler.tick(clock.advance(60)) is None  # nothing of it is planned any more
    release.set()
    assert scheduler.recorder.flush(5)
    wait_until(lambda: [row["outcome"] for row in run_rows(scheduler.database, "held", 10, None)] == ["success"])


def test_a_runtime_task_created_with_retries_is_attempted_again_and_keeps_them_after_restart(
    live_app, make_settings, database_url
) -> None:
    """POST /tasks takes retries and retry_backoff as a declaration does: failing twice then
    succeeding is attempts 1-3 (cause retry), and the options survive a restart."""
    failures = {"left": 2}
    lock = threading.Lock()

    def registry() -> TaskRegistry:
        registry = TaskRegistry()

        @registry.function("flaky")
        def flaky(ctx: TaskContext) -> None:
            with lock:
                if failures["left"] > 0:
                    failures["left"] -= 1
                    raise RuntimeError("transient")

        return registry

    settings = make_settings(database_url=database_url)
    app = live_app(settings, registry())
    body = {"name": "nightly", "function": "flaky", "trigger": {"interval_seconds": 3600}}
    created = app.client.post("/tasks", json=body | {"retries": 2, "retry_backoff": 0.05}, headers=AUTH)
    assert created.status_code == 201, created.text
    assert created.json()["retries"] == 2
    assert app.client.post("/tasks/nightly/run", headers=AUTH).status_code == 202

    def attempts() -> list[tuple[int, str, str]] | None:
        runs = app.client.get("/tasks/nightly/runs").json()
        done = sorted((r["attempt"], r["trigger"], r["outcome"]) for r in runs if r["outcome"] != "running")
        return done if len(done) == 3 else None

    assert wait_until(attempts, timeout=10) == [(1, "manual", "error"), (2, "retry", "error"), (3, "retry", "success")]
    app.stop()
    again = live_app(settings, registry())
    assert again.client.get("/tasks/nightly").json()["retries"] == 2


def test_a_runtime_task_created_with_a_checkin_url_checks_in_after_each_success_and_keeps_it(
    live_app, make_settings, database_url
) -> None:
    """POST /tasks takes `checkin_url` as a declaration does: a successful run GETs it, the URL
    is kept with the definition (a restart checks in again) and never shown back (its path is a
    secret): the task and its audit entry name the host only."""
    from tests.test_checkins import CheckinReceiver

    settings = make_settings(database_url=database_url)
    with CheckinReceiver() as receiver:
        app = live_app(settings, Reports().registry())
        url = receiver.url("/ping/secret-uuid")
        created = _create(app, kwargs={"region": "eu"}, trigger={"interval_seconds": 3600}, checkin_url=url)
        assert created.status_code == 201, created.text
        assert "secret-uuid" not in created.text and "secret-uuid" not in app.client.get("/tasks").text
        audit = app.client.get("/audit").json()[0]
        assert audit["detail"]["checkin_host"] == "127.0.0.1" and "secret-uuid" not in str(audit)
        assert app.client.post("/tasks/report-eu/run", headers=AUTH).status_code == 202
        wait_until(lambda: receiver.paths == ["/ping/secret-uuid"])
        app.stop()

        again = live_app(settings, Reports().registry())
        assert again.client.post("/tasks/report-eu/run", headers=AUTH).status_code == 202
        wait_until(lambda: receiver.paths == ["/ping/secret-uuid"] * 2)


def test_a_checkin_url_given_on_one_replica_is_applied_on_another(make_scheduler, tmp_path) -> None:
    """The second replica builds the task from the persisted definition (the cluster's path,
    cluster_sync → apply_definition) and checks in after the runs it makes."""
    from servicescheduler.storage import runtime_tasks
    from tests.test_checkins import CheckinReceiver

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    first = make_scheduler(Reports().registry(), database_url=url)
    second = make_scheduler(Reports().registry(), database_url=url)
    with CheckinReceiver() as receiver:
        first.add_task(
            "report-eu",
            "send-report",
            {"interval_seconds": 3600},
            kwargs={"region": "eu"},
            checkin_url=receiver.url("/from-first"),
        )
        with second.database.read_session() as session:
            for definition in runtime_tasks.changed_since(session, 0):
                second.apply_definition(definition)
        assert "report-eu" in second.names()
        second.trigger("report-eu")
        wait_until(lambda: receiver.paths == ["/from-first"])


def test_a_bad_checkin_url_is_a_422_naming_the_field(live_app, make_settings) -> None:
    app = live_app(make_settings(), Reports().registry())
    for bad in ("ftp://example.org/x", "hc-ping.com/abc", ""):
        response = _create(app, kwargs={"region": "eu"}, checkin_url=bad)
        assert response.status_code == 422, response.text
        assert "checkin_url" in response.json()["detail"]
    assert app.client.get("/tasks/report-eu").status_code == 404
    with pytest.raises(InvalidTask, match="checkin_url must be an http"):
        app.service.add_task("report-eu", "send-report", every(1).hours, kwargs={"region": "eu"}, checkin_url="x")


def test_the_history_of_a_deleted_runtime_task_is_still_served(live_app, make_settings, database_url) -> None:
    """DELETE keeps the runs (ss_task_runs): GET /tasks/{name}/runs answers 200 with them, filters
    and pages as before; a name that never ran anything is still a 404."""
    app = live_app(make_settings(database_url=database_url), Reports().registry())
    assert _create(app, kwargs={"region": "eu"}, trigger={"interval_seconds": 3600}).status_code == 201
    assert app.client.post("/tasks/report-eu/run", headers=AUTH).status_code == 202

    def finished() -> list[dict[str, Any]] | None:
        runs = app.client.get("/tasks/report-eu/runs").json()
        return runs if runs and runs[0]["outcome"] == "success" else None

    before = wait_until(finished)
    assert app.client.delete("/tasks/report-eu", headers=AUTH).status_code == 204
    assert app.client.get("/tasks/report-eu").status_code == 404
    after = app.client.get("/tasks/report-eu/runs")
    assert after.status_code == 200, after.text
    assert [run["run_id"] for run in after.json()] == [run["run_id"] for run in before]
    assert app.client.get("/tasks/report-eu/runs?outcome=error").json() == []
    assert app.client.get("/tasks/report-eu/runs?offset=1").json() == []
    assert app.client.get("/tasks/never-was/runs").status_code == 404


def _held_task(make_scheduler: Any) -> tuple[Any, threading.Event, threading.Event]:
    """A scheduler whose runtime task `held` is running (until `release`), then deleted."""
    from tests.conftest import FakeClock

    started, release = threading.Event(), threading.Event()
    registry = TaskRegistry()

    @registry.function("hold")
    def hold(ctx: TaskContext, *, seconds: float) -> None:
        started.set()
        release.wait(seconds)

    clock = FakeClock()
    scheduler = make_scheduler(registry, clock=clock, run_loop=False)
    scheduler.add_task("held", "hold", {"interval_seconds": 10}, kwargs={"seconds": 10})
    scheduler.tick(clock.advance(10))
    assert started.wait(5)
    scheduler.remove_task("held")
    return scheduler, started, release


def _outcomes(scheduler: Any, task: str) -> list[str]:
    from servicescheduler.storage.history import run_rows

    return [row["outcome"] for row in run_rows(scheduler.database, task, 10, None)]


def test_shutdown_interrupts_a_run_of_a_deleted_task_past_the_grace(make_scheduler) -> None:
    """Stopping records the run `interrupted` at once (not left `running` for the next start-up)
    and names its task among the unfinished ones."""
    scheduler, _, release = _held_task(make_scheduler)
    try:
        assert scheduler.stop(timeout=0.2) == ["held"]
        assert _outcomes(scheduler, "held") == ["interrupted"]
    finally:
        release.set()


def test_shutdown_waits_for_a_run_of_a_deleted_task_within_the_grace(make_scheduler) -> None:
    """Stopping waits for it as for any running run: it ends `success` and is stored."""
    scheduler, _, release = _held_task(make_scheduler)
    stopped: list[list[str]] = []
    stopping = threading.Thread(target=lambda: stopped.append(scheduler.stop(timeout=10)))
    stopping.start()
    try:
        stopping.join(0.5)  # without waiting for the run, stop() returns in a few ms
        assert stopping.is_alive() and not stopped, "stop() did not wait for the deleted task's run"
        release.set()
        stopping.join(10)
    finally:
        release.set()
    assert stopped == [[]]
    assert _outcomes(scheduler, "held") == ["success"]


def test_patch_trigger_null_puts_a_task_back_on_its_configured_trigger(live_app, make_settings, database_url) -> None:
    """`PATCH {"trigger": null}` drops the operator's trigger: a declared task is back on its
    code's (or TASK_<NAME>_INTERVAL_SECONDS'), a runtime task on the one it was created with;
    persisted (a restart keeps it) and audited."""
    settings = make_settings(database_url=database_url)
    app = live_app(settings, Reports().registry())
    every_5s = {"trigger": {"cron": "*/5 * * * * *", "tz": "UTC"}}
    assert app.client.patch("/tasks/job", json=every_5s, headers=AUTH).status_code == 200
    reset = app.client.patch("/tasks/job", json={"trigger": None}, headers=AUTH)
    assert reset.status_code == 200, reset.text
    task = reset.json()
    assert (task["schedule"], task["trigger"], task["interval_overridden"]) == (
        "every hour",
        {"interval_seconds": 3600},
        False,
    )
    assert app.client.get("/audit").json()[0]["detail"] == {"reset": {"interval_seconds": 3600}}
    assert app.client.patch("/tasks/job", json={"interval_seconds": 60}, headers=AUTH).json()["schedule"] == (
        "every 60 seconds"
    )
    assert app.client.patch("/tasks/job", json={"trigger": None}, headers=AUTH).json()["schedule"] == "every hour"

    created = _create(app, kwargs={"region": "eu"}, trigger={"cron": "0 3 * * *", "tz": "Europe/Berlin"})
    assert created.status_code == 201
    to_interval = {"trigger": {"interval_seconds": 5}}
    assert app.client.patch("/tasks/report-eu", json=to_interval, headers=AUTH).status_code == 200
    back = app.client.patch("/tasks/report-eu", json={"trigger": None}, headers=AUTH).json()
    assert back["trigger"] == {"cron": "0 3 * * *", "tz": "Europe/Berlin"}
    for bad, reason in [({"trigger": None, "interval_seconds": 5}, "resets the trigger"), ({}, "give either")]:
        response = app.client.patch("/tasks/job", json=bad, headers=AUTH)
        assert response.status_code == 422 and reason in response.json()["detail"], response.text
    app.stop()

    again = live_app(settings, Reports().registry())
    assert again.client.get("/tasks/job").json()["schedule"] == "every hour"
    assert again.client.get("/tasks/report-eu").json()["schedule"] == "cron '0 3 * * *' Europe/Berlin"


def test_patch_trigger_null_honours_the_configured_interval(live_app, make_settings) -> None:
    app = live_app(make_settings(task_intervals={"job": 120}), Reports().registry())
    assert app.client.get("/tasks/job").json()["schedule"] == "every 120 seconds"
    assert app.client.patch("/tasks/job", json={"interval_seconds": 30}, headers=AUTH).status_code == 200
    reset = app.client.patch("/tasks/job", json={"trigger": None}, headers=AUTH).json()
    assert (reset["schedule"], reset["interval_seconds"]) == ("every 120 seconds", 120)


def test_a_trigger_reset_on_one_replica_is_applied_on_another(make_scheduler, tmp_path) -> None:
    """The reset is a control change like a PATCH (cluster_sync → apply_control): the other
    replica drops its copy of the override too."""
    from servicescheduler.storage import control

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    first = make_scheduler(Reports().registry(), database_url=url)
    second = make_scheduler(Reports().registry(), database_url=url)

    def sync() -> None:
        with second.database.read_session() as session:
            for state in control.changed_since(session, 0):
                second.apply_control(state)

    first.retrigger("job", {"cron": "0 3 * * *", "tz": "UTC"})
    sync()
    assert second.status("job").schedule == "cron '0 3 * * *' UTC"
    first.reset_trigger("job")
    sync()
    assert second.status("job").schedule == "every hour"
