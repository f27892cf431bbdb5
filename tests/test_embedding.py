"""ServiceScheduler embedded in a host app of its own: its router under the host's prefix, the
host's auth as the actor, errors and the body limit scoped to the library's routes, two instances
side by side, the dashboard mounted under a prefix, no logging configured, no environment read."""

from __future__ import annotations

import gc
import logging
import threading
import weakref
from typing import Annotated

import pytest
from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, generate_latest
from pydantic import BaseModel

from servicescheduler import ServiceScheduler, TaskContext, TaskDefinitionError, every
from tests.conftest import wait_until


def host_auth(x_user: Annotated[str | None, Header()] = None) -> str:
    """The host's own auth: a header its gateway sets."""
    if not x_user:
        raise HTTPException(401, "who are you?")
    return x_user


class Echo(BaseModel):
    text: str


def build_host(scheduler: ServiceScheduler, prefix: str = "/ops") -> FastAPI:
    app = FastAPI(lifespan=scheduler.lifespan)

    @app.exception_handler(RequestValidationError)
    async def host_validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"host": "validation"}, 400)

    @app.post("/echo")
    def echo(body: Echo) -> dict[str, str]:
        return {"text": body.text}

    app.include_router(scheduler.router, prefix=prefix)
    app.mount(f"{prefix}/ui", scheduler.dashboard)
    return app


def make_scheduler(tmp_path, name: str = "app", **options) -> ServiceScheduler:
    values = dict(
        database_url=f"sqlite:///{tmp_path / f'{name}.db'}",
        kafka_enabled=False,
        builtin_tasks="",
        admin_token_file=tmp_path / f"{name}-token",
        shutdown_grace_seconds=5,
    )
    values.update(options)
    return ServiceScheduler(**values)


def test_the_router_serves_under_the_hosts_prefix_and_the_audit_names_the_hosts_actor(tmp_path, host_app) -> None:
    runs: list[str] = []
    scheduler = make_scheduler(tmp_path, auth=host_auth)

    @scheduler.task("ping", trigger=every(1).hours)
    def ping(ctx: TaskContext) -> None:
        runs.append(ctx.run_id)

    app = host_app(build_host(scheduler))
    assert [task["name"] for task in app.client.get("/ops/tasks").json()] == ["ping"]
    refused = app.client.post("/ops/tasks/ping/run", headers={"Authorization": "Bearer anything"})
    assert refused.status_code == 401 and refused.json() == {"detail": "who are you?"}
    accepted = app.client.post("/ops/tasks/ping/run", headers={"X-User": "alice"})
    assert accepted.status_code == 202, accepted.text
    run_id = accepted.json()["run_id"]
    wait_until(lambda: run_id in runs)
    audit = wait_until(lambda: app.client.get("/ops/audit", params={"target": "ping"}).json())
    assert [(entry["actor"], entry["action"]) for entry in audit] == [("alice", "run")]
    assert app.client.post("/ops/tasks/ping/disable", headers={"X-User": "bob"}).json()["enabled"] is False
    assert not (tmp_path / "app-token").exists()  # with the host's auth, no token file is made
    assert app.client.get("/hello").status_code == 404  # the host's own 404, untouched
    schema = app.client.get("/openapi.json").json()  # the host's schema documents the bound routes
    assert "/ops/tasks/{name}/run" in schema["paths"] and "/ops/ui/api/tasks" not in schema["paths"]


def test_errors_and_the_body_limit_are_the_routers_own(tmp_path, host_app) -> None:
    scheduler = make_scheduler(tmp_path, auth=host_auth, max_request_bytes=1024)
    scheduler.task("ping", trigger=every(1).hours)(lambda: None)
    app = host_app(build_host(scheduler))
    user = {"X-User": "alice"}
    # The library's routes: one sentence per error, 404 for an unknown task, 413 past the limit.
    bad = app.client.patch("/ops/tasks/ping", json={"interval_seconds": 0}, headers=user)
    assert bad.status_code == 422 and "interval_seconds" in bad.json()["detail"]
    assert app.client.get("/ops/tasks/nope").json() == {"detail": "unknown task 'nope'"}
    big = app.client.patch("/ops/tasks/ping", content=b'{"interval_seconds": 60' + b" " * 2048 + b"}", headers=user)
    assert big.status_code == 413, big.text
    # The host's routes keep the host's validation format and take bodies past the library's limit.
    assert app.client.post("/echo", json={}).json() == {"host": "validation"}
    assert app.client.post("/echo", json={"text": "x" * 4096}).status_code == 200


def test_two_instances_in_one_app_see_only_their_own_tasks_routes_and_dashboards(tmp_path, host_app) -> None:
    one = make_scheduler(tmp_path, "one", admin_token="token-one")
    two = make_scheduler(tmp_path, "two", admin_token="token-two")
    one.task("alpha", trigger=every(1).hours)(lambda: None)
    two.task("beta", trigger=every(1).hours)(lambda: None)
    app = FastAPI(lifespan=one.lifespan)
    app.include_router(one.router, prefix="/one")
    app.include_router(two.router, prefix="/two")
    app.mount("/one/ui", one.dashboard)
    app.mount("/two/ui", two.dashboard)
    served = host_app(app)
    two.start()  # the second one is started by hand, the way a host with its own lifespan would
    try:
        assert [task["name"] for task in served.client.get("/one/tasks").json()] == ["alpha"]
        assert [task["name"] for task in served.client.get("/two/tasks").json()] == ["beta"]
        # Each token opens its own instance only.
        assert (
            served.client.post("/one/tasks/alpha/run", headers={"Authorization": "Bearer token-two"}).status_code == 401
        )
        assert (
            served.client.post("/two/tasks/beta/run", headers={"Authorization": "Bearer token-two"}).status_code == 202
        )
        page = served.client.get("/two/ui/").text
        assert 'href="/two/ui/tasks/beta"' in page and 'data-api="/two/ui/api/tasks/beta/run"' in page
        assert "alpha" not in page
        # The dashboard's own API (what its buttons call) is bound to its instance.
        assert served.client.get("/two/ui/api/tasks/beta").json()["name"] == "beta"
        assert served.client.get("/two/ui/static/dashboard.js").status_code == 200
    finally:
        two.stop()


def test_routes_answer_503_until_the_scheduler_runs(tmp_path, host_app) -> None:
    scheduler = make_scheduler(tmp_path)
    app = FastAPI()  # the host forgot the lifespan
    app.include_router(scheduler.router)
    served = host_app(app)
    answer = served.client.get("/tasks")
    assert answer.status_code == 503 and "lifespan" in answer.json()["detail"]


def test_the_library_configures_no_logging_and_logs_to_its_own_loggers(tmp_path, caplog) -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    scheduler = make_scheduler(tmp_path)
    with caplog.at_level(logging.INFO, logger="servicescheduler"):
        scheduler.start()
        scheduler.stop()
    assert root.handlers == handlers and root.level == level
    started = [record for record in caplog.records if record.getMessage() == "service_started"]
    assert len(started) == 1 and started[0].name == "servicescheduler.service"
    assert started[0].servicescheduler["database"] == "sqlite"  # the fields travel on the record


def test_keyword_settings_read_no_environment_and_from_env_does(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("WORKER_THREADS", "3")
    monkeypatch.chdir(tmp_path)
    assert ServiceScheduler(database_url=f"sqlite:///{tmp_path / 'a.db'}").settings.worker_threads == 8
    assert ServiceScheduler.from_env().settings.worker_threads == 3
    with pytest.raises(TypeError, match="not both"):
        ServiceScheduler(ServiceScheduler().settings, worker_threads=2)


def test_metrics_go_to_the_hosts_registry_and_leave_it_on_stop(tmp_path) -> None:
    registry = CollectorRegistry()
    scheduler = make_scheduler(tmp_path, metrics_registry=registry)
    scheduler.task("ping", trigger=every(1).hours)(lambda: None)
    for _ in range(2):  # a second start registers again: the first stop left nothing behind
        scheduler.start()
        assert b'task_enabled{task="ping"} 1.0' in generate_latest(registry)
        scheduler.stop()
    assert generate_latest(registry) == b""


def test_a_task_declared_twice_is_refused_before_anything_starts(tmp_path) -> None:
    scheduler = make_scheduler(tmp_path, builtin_tasks="cleanup")
    scheduler.task("cleanup", trigger=every(1).hours)(lambda: None)
    with pytest.raises(TaskDefinitionError, match="cleanup: a task with this name is already registered"):
        scheduler.check()
    assert not scheduler.is_running and not (tmp_path / "app.db").exists()


def test_start_and_stop_from_several_threads_run_one_instance(tmp_path) -> None:
    scheduler = make_scheduler(tmp_path)
    errors: list[BaseException] = []

    def start() -> None:
        try:
            scheduler.start()
        except RuntimeError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    try:
        assert scheduler.is_running and len(errors) == 2
        assert all("already running" in str(error) for error in errors)
    finally:
        scheduler.stop()


class _Cycle:
    """Garbage that only the cyclic collector can free (it refers to itself)."""

    def __init__(self) -> None:
        self.me = self


def test_gc_freeze_on_start_collects_then_freezes_what_is_alive_and_is_off_by_default(tmp_path, caplog) -> None:
    assert gc.get_freeze_count() == 0, "another test left objects frozen"
    plain = make_scheduler(tmp_path, name="plain")
    plain.start()
    plain.stop()
    assert gc.get_freeze_count() == 0  # a host app's collector is its own unless it opts in

    scheduler = make_scheduler(tmp_path, gc_freeze_on_start=True)
    garbage = weakref.ref(_Cycle())  # unreachable from the start, freed only by a collection
    try:
        with caplog.at_level(logging.INFO, logger="servicescheduler"):
            scheduler.start()
        frozen = gc.get_freeze_count()
        tracked = {id(o) for o in gc.get_objects()}  # every generation but the permanent one
        scheduler.stop()
    finally:
        gc.unfreeze()
    assert garbage() is None  # collected first: garbage is never frozen
    assert frozen > 1000 and id(scheduler) not in tracked  # the app alive at start is frozen
    logged = [r.servicescheduler for r in caplog.records if r.getMessage() == "gc_frozen"]
    assert len(logged) == 1 and logged[0]["objects"] >= frozen  # freed since by reference counting: fewer
