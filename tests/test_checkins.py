"""Check-ins after successful runs, against real HTTP receivers on 127.0.0.1: one that answers,
one that hangs on its first request (the run is still a success, the failure is counted and
logged, the next check-in still goes)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from servicescheduler.scheduling.registry import TaskDefinitionError, TaskRegistry, build_spec
from servicescheduler.scheduling.triggers import every
from servicescheduler.settings import SettingsError, load_settings
from tests.conftest import AUTH, wait_until


class CheckinReceiver:
    """Records the path of every GET; the first `hang` requests get no answer until stopped."""

    def __init__(self, hang: int = 0) -> None:
        self.paths: list[str] = []
        self.hang = hang
        self._closing = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                with receiver._lock:
                    receiver.paths.append(self.path)
                    hangs = len(receiver.paths) <= receiver.hang
                if hangs and receiver._closing.wait(30):
                    return
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return None

        class Server(ThreadingHTTPServer):
            daemon_threads = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="checkin-receiver", daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_port}{path}"

    def __enter__(self) -> CheckinReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def receiver() -> Iterator[CheckinReceiver]:
    with CheckinReceiver() as started:
        yield started


def _registry(url: str) -> TaskRegistry:
    registry = TaskRegistry()

    def fine() -> None:
        return None

    def broken() -> None:
        raise RuntimeError("no")

    registry.register("fine", fine, trigger=every(1).hours, enabled=False, checkin_url=url)
    registry.register("broken", broken, trigger=every(1).hours, enabled=False, checkin_url=url + "-broken")
    registry.register("silent", fine, trigger=every(1).hours, enabled=False)
    return registry


def _checkins(app, task: str, outcome: str) -> float:
    labels = {"task": task, "outcome": outcome}
    return app.application.metrics.registry.get_sample_value("task_checkins_total", labels) or 0


def _run(app, task: str) -> dict:
    run_id = app.client.post(f"/tasks/{task}/run", headers=AUTH).json()["run_id"]

    def finished() -> dict | None:
        runs = app.client.get(f"/tasks/{task}/runs").json()
        return next((r for r in runs if r["run_id"] == run_id and r["outcome"] != "running"), None)

    return wait_until(finished)


def test_each_successful_run_checks_in_once_and_failed_runs_do_not(live_app, make_settings, receiver) -> None:
    app = live_app(make_settings(), _registry(receiver.url("/ping/fine")))
    # Exported at 0 from the start (the alert's increase() sees the first failure); none for a
    # task without a check-in URL.
    get = app.application.metrics.registry.get_sample_value
    assert get("task_checkins_total", {"task": "fine", "outcome": "failed"}) == 0.0
    assert get("task_checkins_total", {"task": "silent", "outcome": "failed"}) is None
    assert _run(app, "fine")["outcome"] == "success"
    wait_until(lambda: receiver.paths == ["/ping/fine"])
    assert _run(app, "broken")["outcome"] == "error"
    assert _run(app, "silent")["outcome"] == "success"
    assert _run(app, "fine")["outcome"] == "success"
    wait_until(lambda: receiver.paths == ["/ping/fine", "/ping/fine"])
    assert _checkins(app, "fine", "ok") == 2 and _checkins(app, "broken", "ok") == 0


def test_the_environment_overrides_the_declared_url(live_app, make_settings, receiver) -> None:
    settings = make_settings(task_checkin_urls={"silent": receiver.url("/from-env")})
    app = live_app(settings, _registry(receiver.url("/declared")))
    assert _run(app, "silent")["outcome"] == "success"
    wait_until(lambda: receiver.paths == ["/from-env"])


def test_a_receiver_that_never_answers_costs_the_run_nothing(live_app, make_settings, capsys) -> None:
    with CheckinReceiver(hang=1) as hanging:
        app = live_app(make_settings(checkin_timeout_seconds=0.5), _registry(hanging.url("/ping")))
        first = _run(app, "fine")
        assert first["outcome"] == "success" and first["duration_ms"] < 400  # not held by the check-in
        wait_until(lambda: _checkins(app, "fine", "failed") == 1, timeout=5)
        failures = [line for line in capsys.readouterr().out.splitlines() if "task_checkin_failed" in line]
        assert len(failures) == 1 and '"host": "127.0.0.1"' in failures[0] and "/ping" not in failures[0]
        assert _run(app, "fine")["outcome"] == "success"
        wait_until(lambda: _checkins(app, "fine", "ok") == 1, timeout=5)  # the next one still goes
        assert hanging.paths == ["/ping", "/ping"]


def test_bad_checkin_urls_are_refused_naming_the_task_or_variable() -> None:
    with pytest.raises(TaskDefinitionError, match="fine: checkin_url must be an http"):
        build_spec("fine", lambda: None, trigger=every(1).hours, checkin_url="ftp://x")
    with pytest.raises(SettingsError, match="TASK_NIGHTLY__EXPORT_CHECKIN_URL"):
        load_settings({"TASK_NIGHTLY__EXPORT_CHECKIN_URL": "not a url"})
    settings = load_settings({"TASK_NIGHTLY__EXPORT_CHECKIN_URL": "https://hc-ping.com/abc"})
    assert settings.task_checkin_urls == {"nightly-export": "https://hc-ping.com/abc"}


def test_a_run_another_replica_won_does_not_check_in(make_settings, receiver) -> None:
    """In a cluster the launcher's gate refuses a slot another replica claimed: that run never
    reaches the check-in, so only the winner checks in (one check-in per slot)."""
    import time

    from servicescheduler.metrics import Metrics
    from servicescheduler.scheduling.checkins import CheckIns
    from servicescheduler.scheduling.executor import Outcome, TaskExecutor
    from servicescheduler.scheduling.launcher import RunLauncher, new_run_id
    from servicescheduler.scheduling.tracked import TrackedTask
    from servicescheduler.storage.records import RunRecord
    from servicescheduler.vocabulary import RunOutcome

    settings = make_settings()
    spec = _registry(receiver.url("/slot")).get("fine")
    assert spec is not None
    task = TrackedTask.restore(spec, None, settings)
    checkins = CheckIns(settings, Metrics())
    ended: list[str] = []

    class Gate:
        def __init__(self, won: bool) -> None:
            self.won = won

        def admit(self, task: str, run: RunRecord) -> Outcome | None:
            return None if self.won else Outcome(RunOutcome.SKIPPED, "another replica claimed the slot")

        def release(self, task: str, run_id: str) -> None:
            return None

    executor = TaskExecutor(1, 1)
    try:
        for won in (False, True):
            launcher = RunLauncher(
                executor,
                time.time,
                lambda t, r: None,
                lambda t, r, o: ended.append(o.outcome),
                Gate(won),
                succeeded=lambda t, r: checkins.after_success(t.spec, r.run_id),
            )
            launcher._execute(task, RunRecord(new_run_id(), "fine", "manual", None, time.time()))
        wait_until(lambda: receiver.paths and checkins._pending == 0)
        assert receiver.paths == ["/slot"]
        assert ended == [RunOutcome.SKIPPED, RunOutcome.SUCCESS]
    finally:
        executor.shutdown()
        checkins.close()
