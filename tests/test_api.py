"""The HTTP API against the real app (uvicorn on loopback), on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from servicescheduler.scheduling.registry import TaskRegistry
from servicescheduler.scheduling.triggers import every
from servicescheduler.storage.db import Database
from servicescheduler.storage.models import TaskState
from servicescheduler.support.clock import utcnow
from tests.conftest import AUTH, wait_until

MUTATING = [
    ("post", "/tasks/{name}/enable", None),
    ("post", "/tasks/{name}/disable", None),
    ("post", "/tasks/{name}/run", None),
    ("patch", "/tasks/{name}", {"interval_seconds": 60}),
    ("post", "/consumer/enable", None),
    ("post", "/consumer/disable", None),
    ("post", "/consumer/restart", None),
]


class Counter:
    """A task body that counts its runs and can be held open."""

    def __init__(self) -> None:
        self.calls = 0
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self) -> None:
        self.calls += 1
        self.gate.wait(10)


def _registry(counter: Counter, **options) -> TaskRegistry:
    registry = TaskRegistry()
    options.setdefault("trigger", every(1).hours)
    registry.register("job", counter, description="test job", **options)
    return registry


@pytest.mark.parametrize("method,path,body", MUTATING)
def test_mutating_routes_need_the_admin_token(live_app, make_settings, method, path, body) -> None:
    app = live_app(make_settings(), _registry(Counter()))
    url = path.format(name="job")
    missing = app.client.request(method.upper(), url, json=body)
    wrong = app.client.request(method.upper(), url, json=body, headers={"Authorization": "Bearer nope"})
    for response in (missing, wrong):
        assert response.status_code == 401
        assert isinstance(response.json()["detail"], str)
        assert response.headers["www-authenticate"] == "Bearer"


def test_unknown_task_and_invalid_input_get_clear_4xx(live_app, make_settings) -> None:
    app = live_app(make_settings(), _registry(Counter()))
    assert app.client.get("/tasks/nope").json() == {"detail": "unknown task 'nope'"}
    assert app.client.post("/tasks/nope/run", headers=AUTH).status_code == 404
    for bad in (
        {"interval_seconds": 0},
        {"interval_seconds": 7 * 86400 + 1},
        {"interval_seconds": "soon"},
        {"interval_seconds": True},  # JSON booleans and numeric strings are not integers (schemathesis)
        {"interval_seconds": "60"},
        {"interval": 5},
        {},
    ):
        response = app.client.patch("/tasks/job", json=bad, headers=AUTH)
        assert response.status_code == 422, bad
        assert "interval" in response.json()["detail"]
    response = app.client.get("/tasks/job/runs", params={"limit": 501})
    assert response.status_code == 422 and "limit" in response.json()["detail"]
    assert app.client.get("/tasks/job/runs", params={"outcome": "meh"}).status_code == 422


def test_trigger_answers_202_then_409_while_running(live_app, make_settings) -> None:
    counter = Counter()
    app = live_app(make_settings(), _registry(counter, enabled=False))
    counter.gate.clear()
    first = app.client.post("/tasks/job/run", headers=AUTH)
    assert first.status_code == 202
    run_id = first.json()["run_id"]
    second = app.client.post("/tasks/job/run", headers=AUTH)
    assert second.status_code == 409 and run_id in second.json()["detail"]
    counter.gate.set()
    wait_until(lambda: app.client.get("/tasks/job").json()["last_run"])
    task = app.client.get("/tasks/job").json()
    assert task["last_run"]["run_id"] == run_id and task["last_run"]["trigger"] == "manual"
    history = app.client.get("/tasks/job/runs").json()
    wait_until(lambda: app.client.get("/tasks/job/runs").json())
    history = app.client.get("/tasks/job/runs").json()
    assert [run["run_id"] for run in history] == [run_id]
    audit = app.client.get("/audit", params={"target": "job"}).json()
    assert audit[0]["action"] == "run" and audit[0]["actor"] == "admin"


def test_disable_stops_runs_at_once_and_survives_restart(live_app, make_settings, database_url) -> None:
    settings = make_settings(database_url=database_url)
    counter = Counter()
    registry = TaskRegistry()
    registry.register("job", counter, trigger=every(1).seconds)
    app = live_app(settings, registry)
    wait_until(lambda: counter.calls >= 1)
    disabled = app.client.post("/tasks/job/disable", headers=AUTH).json()
    assert disabled["enabled"] is False and disabled["next_run_at"] is None
    calls = counter.calls
    app.stop()
    again = live_app(settings, registry)
    task = again.client.get("/tasks/job").json()
    assert task["enabled"] is False and task["next_run_at"] is None
    assert again.scheduler.tick(again.scheduler.clock() + 3600) is None  # nothing is scheduled
    assert counter.calls == calls
    enabled = again.client.post("/tasks/job/enable", headers=AUTH).json()
    assert enabled["enabled"] is True
    wait_until(lambda: counter.calls > calls)
    actions = [entry["action"] for entry in again.client.get("/audit").json()]
    assert actions[:2] == ["enable", "disable"]


def test_patch_reschedules_at_once_and_survives_restart(live_app, make_settings, database_url) -> None:
    settings = make_settings(database_url=database_url)
    registry = _registry(Counter())
    app = live_app(settings, registry)
    task = app.client.patch("/tasks/job", json={"interval_seconds": 90}, headers=AUTH).json()
    assert task["interval_seconds"] == 90 and task["schedule"] == "every 90 seconds"
    assert task["interval_overridden"] is True
    app.stop()
    again = live_app(settings, registry)
    task = again.client.get("/tasks/job").json()
    assert task["interval_seconds"] == 90


def _set_anchor(url: str, settings, name: str, age: timedelta) -> None:
    database = Database(settings)
    with database.session() as session:
        row = session.get(TaskState, name)
        row.last_run_scheduled_for = utcnow() - age
    database.dispose()


def test_restart_keeps_the_cadence_or_runs_at_once_when_overdue(live_app, make_settings, database_url) -> None:
    settings = make_settings(database_url=database_url)
    counter = Counter()
    registry = _registry(counter)  # every hour
    app = live_app(settings, registry)
    wait_until(lambda: counter.calls == 1)  # never ran before: due at once
    app.stop()
    _set_anchor(database_url, settings, "job", timedelta(minutes=20))
    again = live_app(settings, registry)
    task = again.client.get("/tasks/job").json()
    assert counter.calls == 1
    assert task["next_run_at"] is not None
    remaining = again.scheduler.next_due("job") - again.scheduler.clock()
    assert 39 * 60 < remaining <= 40 * 60  # still on the old grid: 40 min to go
    again.stop()
    _set_anchor(database_url, settings, "job", timedelta(hours=2))
    third = live_app(settings, registry)
    wait_until(lambda: counter.calls == 2)  # overdue: due at once
    wait_until(lambda: third.client.get("/tasks/job").json()["last_run"])
    assert third.client.get("/tasks/job").json()["last_run"]["trigger"] == "startup"


def test_health_turns_503_when_the_loop_thread_dies(live_app, make_settings) -> None:
    app = live_app(make_settings(), _registry(Counter()))
    assert app.client.get("/health").json() == {"status": "ok"}

    def broken_tick(now=None):
        raise RuntimeError("simulated loop failure")

    app.scheduler.tick = broken_tick
    app.scheduler.wake()
    wait_until(lambda: app.client.get("/health").status_code == 503)
    body = app.client.get("/health").json()
    assert "simulated loop failure" in body["detail"]
    assert app.client.get("/ready").status_code == 503


def test_ready_and_metrics_report_the_service(live_app, make_settings) -> None:
    counter = Counter()
    app = live_app(make_settings(), _registry(counter))
    wait_until(lambda: counter.calls == 1)
    ready = app.client.get("/ready")
    assert ready.status_code == 200 and ready.json()["checks"]["database"] == "ok"
    wait_until(lambda: 'task_runs_total{outcome="success",task="job"} 1.0' in app.client.get("/metrics").text)
    text = app.client.get("/metrics").text
    assert 'task_enabled{task="job"} 1.0' in text
    assert "scheduler_loop_heartbeat_age_seconds" in text


def test_generated_admin_token_is_written_owner_only_and_never_logged(
    live_app, make_settings, tmp_path, capsys
) -> None:
    token_file = tmp_path / "secret" / "token"
    app = live_app(make_settings(admin_token=None, admin_token_file=token_file), _registry(Counter()))
    token = token_file.read_text().strip()
    assert len(token) >= 32
    assert token_file.stat().st_mode & 0o777 == 0o600
    response = app.client.post("/tasks/job/disable", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert token not in capsys.readouterr().out
