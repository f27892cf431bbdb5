"""Settings do what they say: TASK_* from .env, BUILTIN_TASKS, TASK_MODULES, SCHEDULER_ENABLED."""

from __future__ import annotations

import os
import subprocess
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from devtools.serve import uvicorn_command
from devtools.tansu import free_port
from servicescheduler.embedding import build_registry
from servicescheduler.errors import StartupError
from servicescheduler.scheduling import TaskRegistry, every, tasks
from servicescheduler.settings import SettingsError, load_settings
from tests.conftest import ADMIN_TOKEN, AUTH, FakeClock, wait_until

ROOT = Path(__file__).resolve().parent.parent


def test_task_overrides_are_read_from_dot_env_and_the_environment_wins(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(
        "TASK_CLEANUP_INTERVAL_SECONDS=120\nTASK_REPORT__DAILY_ENABLED=false\nTASK_NOTIFICATIONS_INTERVAL_SECONDS=30\n"
    )
    monkeypatch.setenv("TASK_NOTIFICATIONS_INTERVAL_SECONDS", "45")
    settings = load_settings()
    assert settings.task_intervals == {"cleanup": 120, "notifications": 45}
    assert settings.task_enabled == {"report-daily": False}


@pytest.mark.parametrize("value", ["0", "604801", "soon"])
def test_task_interval_settings_are_bounded_like_the_api(value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"TASK_CLEANUP_INTERVAL_SECONDS": value})
    assert str(caught.value).startswith("invalid setting TASK_CLEANUP_INTERVAL_SECONDS:")


def test_a_task_setting_naming_no_task_is_a_warning_naming_the_variable(live_app, make_settings, capsys) -> None:
    registry = TaskRegistry()
    registry.register("job", lambda: None, trigger=every(1).hours)
    live_app(make_settings(task_intervals={"jbo": 60}, task_enabled={"job": True}), registry)
    warnings = [line for line in capsys.readouterr().out.splitlines() if "task_setting_unknown_task" in line]
    assert len(warnings) == 1 and "TASK_JBO_INTERVAL_SECONDS" in warnings[0], warnings


def test_builtin_tasks_chooses_which_built_in_tasks_are_served(make_settings) -> None:
    def names(value: str) -> list[str]:
        return [spec.name for spec in build_registry(make_settings(builtin_tasks=value), tasks)]

    assert names("all") == ["cleanup", "notifications", "report"]
    assert names("report, cleanup") == ["cleanup", "report"]
    assert names("") == []
    with pytest.raises(StartupError, match="BUILTIN_TASKS names no built-in task nope"):
        names("report,nope")


def test_scheduler_disabled_plans_no_run_but_manual_runs_work(make_scheduler) -> None:
    calls: list[str] = []
    registry = TaskRegistry()
    registry.register("job", lambda ctx: calls.append(ctx.trigger), trigger=every(1).seconds)
    clock = FakeClock()
    scheduler = make_scheduler(registry, clock=clock, scheduler_enabled=False)
    for _ in range(5):
        scheduler.tick(clock.advance(1.0))
    assert scheduler.next_due("job") is None and scheduler.agenda_size() == 0
    scheduler.trigger("job")
    assert scheduler.wait_idle(5)
    assert calls == ["manual"]


def test_scheduler_disabled_keeps_health_and_the_api(live_app, make_settings) -> None:
    registry = TaskRegistry()
    registry.register("job", lambda: None, trigger=every(1).seconds)
    app = live_app(make_settings(scheduler_enabled=False), registry)
    assert app.client.get("/health").json() == {"status": "ok"}
    assert app.client.get("/tasks/job").json()["next_run_at"] is None
    assert app.client.post("/tasks/job/run", headers=AUTH).status_code == 202
    wait_until(lambda: app.client.get("/tasks/job").json()["stats"]["successes"] == 1)


# ----------------------------------------------------------------------------- TASK_MODULES
def _package(root: Path) -> None:
    """A user's own package, outside this repository, declaring a task and a Kafka handler."""
    package = root / "mypkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "tasks.py").write_text(
        textwrap.dedent("""
        from servicescheduler.scheduling import TaskContext, every, tasks

        @tasks.task("hello", trigger=every(1).hours, description="from mypkg")
        def hello(ctx: TaskContext) -> None:
            print("hello from", ctx.task)
    """)
    )


def _serve(tmp_path: Path, **env: str) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    environ = {
        **os.environ,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}",
        "KAFKA_ENABLED": "false",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}",
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "LOG_LEVEL": "WARNING",
        **env,
    }
    process = subprocess.Popen(
        uvicorn_command(port),
        cwd=tmp_path,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return process, f"http://127.0.0.1:{port}"


@pytest.mark.slow
def test_task_modules_serve_tasks_from_a_package_outside_the_repo(tmp_path) -> None:
    _package(tmp_path)
    process, url = _serve(tmp_path, TASK_MODULES="mypkg.tasks", BUILTIN_TASKS="report")
    try:

        def served() -> list[str] | None:
            try:
                return [task["name"] for task in httpx.get(f"{url}/tasks", timeout=2).json()]
            except httpx.HTTPError:
                assert process.poll() is None, process.communicate()[1]
                return None

        names = wait_until(served, timeout=30)
        assert names == ["report", "hello"]
        task = wait_until(
            lambda: (
                httpx.get(f"{url}/tasks/hello", timeout=5).json()["last_run"]
                and httpx.get(f"{url}/tasks/hello", timeout=5).json()
            )
        )
        assert task["description"] == "from mypkg"
        assert task["last_run"]["trigger"] == "startup" and task["last_run"]["outcome"] == "success"
    finally:
        process.terminate()
        process.communicate(timeout=30)


@pytest.mark.slow
def test_a_misspelled_task_module_stops_start_up_with_one_line(tmp_path) -> None:
    _package(tmp_path)
    process, _ = _serve(tmp_path, TASK_MODULES="mypkg.taks")
    started = time.monotonic()
    _, stderr = process.communicate(timeout=60)
    assert process.returncode != 0 and time.monotonic() - started < 60
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if "mypkg.taks" in line]
    assert lines == [
        "configuration error: TASK_MODULES: cannot import 'mypkg.taks': ModuleNotFoundError: "
        "No module named 'mypkg.taks'"
    ], stderr
