"""One vocabulary: what the dashboard offers, the API accepts and the database stores are the
same values (servicescheduler/vocabulary.py), and they are the strings they were before."""

from __future__ import annotations

import re
import threading

from servicescheduler.scheduling.registry import TaskRegistry
from servicescheduler.scheduling.triggers import every
from servicescheduler.vocabulary import FINAL_OUTCOMES, STAT_NAMES, ConsumerState, RunCause, RunOutcome
from tests.conftest import wait_until

OPTION = re.compile(r'<option value="([^"]*)"')


def _registry() -> TaskRegistry:
    registry = TaskRegistry()
    registry.register("job", lambda: None, trigger=every(1).hours)
    return registry


def _offered(html: str) -> list[str]:
    """The values of the task page's outcome filter."""
    select = html.split('<select id="outcome"', 1)[1].split("</select>", 1)[0]
    return OPTION.findall(select)


def test_every_outcome_the_task_page_offers_is_accepted_by_the_page_and_the_api(live_app, make_settings) -> None:
    app = live_app(make_settings(), _registry())
    page = app.client.get("/ui/tasks/job")
    assert page.status_code == 200
    offered = _offered(page.text)
    assert offered == ["", *RunOutcome]  # built from the enum: "all", then every outcome
    for value in offered:
        for path in ("/ui/tasks/job", "/ui/tasks/job/live"):
            answer = app.client.get(path, params={"outcome": value})
            assert answer.status_code == 200, (path, value, answer.text[:200])
        if value:
            assert app.client.get("/tasks/job/runs", params={"outcome": value}).status_code == 200, value
    # Selected after filtering: the form shows the filter it applied.
    filtered = app.client.get("/ui/tasks/job", params={"outcome": RunOutcome.INTERRUPTED}).text
    assert '<option value="interrupted" selected>' in filtered


def test_an_outcome_outside_the_vocabulary_is_refused_by_the_page_and_the_api(live_app, make_settings) -> None:
    app = live_app(make_settings(), _registry())
    for path in ("/ui/tasks/job", "/ui/tasks/job/live", "/tasks/job/runs"):
        assert app.client.get(path, params={"outcome": "unclaimed"}).status_code == 422, path


def test_the_api_publishes_exactly_the_enum_as_the_outcome_filter(live_app, make_settings) -> None:
    app = live_app(make_settings(), _registry())
    schema = app.client.get("/openapi.json").json()
    parameters = schema["paths"]["/tasks/{name}/runs"]["get"]["parameters"]
    [outcome] = [p for p in parameters if p["name"] == "outcome"]
    [enum] = [s for s in outcome["schema"]["anyOf"] if "$ref" in s]
    name = enum["$ref"].rsplit("/", 1)[1]
    assert schema["components"]["schemas"][name]["enum"] == list(RunOutcome)


def test_the_values_are_the_strings_stored_published_and_logged_before() -> None:
    # The database, the API's JSON, the metrics' labels and the task_run log line carry these.
    assert list(RunOutcome) == ["success", "error", "timeout", "skipped", "missed", "interrupted", "running"]
    assert list(FINAL_OUTCOMES) == list(RunOutcome)[:-1]
    assert list(RunCause) == ["schedule", "startup", "catch-up", "manual", "event", "retry"]
    assert set(ConsumerState) == {
        "starting",
        "running",
        "db_unavailable",
        "stalled",
        "backoff",
        "crash_looping",
        "stopping",
        "stuck",
        "disabled",
        "stopped",
    }
    assert set(STAT_NAMES) == set(FINAL_OUTCOMES)
    assert f"{RunOutcome.SUCCESS}" == str(RunOutcome.SUCCESS) == "success"


def test_the_task_json_keeps_its_fields_while_a_run_is_in_progress_and_after(live_app, make_settings) -> None:
    release = threading.Event()
    registry = TaskRegistry()
    registry.register("held", lambda: release.wait(10), trigger=every(1).hours, timeout=30)
    app = live_app(make_settings(), registry)
    try:
        wait_until(lambda: app.client.get("/tasks/held").json()["running"], timeout=5)
        during = app.client.get("/tasks/held").json()
        assert list(during) == TASK_FIELDS
        assert list(during["current_run"]) == ["run_id", "trigger", "started_at", "overrunning"]
        assert during["current_run"]["trigger"] == RunCause.STARTUP
    finally:
        release.set()
    wait_until(lambda: not app.client.get("/tasks/held").json()["running"], timeout=5)
    after = app.client.get("/tasks/held").json()
    assert list(after) == TASK_FIELDS and after["current_run"] is None
    assert list(after["last_run"]) == RUN_FIELDS
    assert (after["last_run"]["outcome"], after["last_run"]["trigger"]) == ("success", "startup")
    assert after["stats"] == {
        "successes": 1,
        "failures": 0,
        "timeouts": 0,
        "skipped": 0,
        "missed": 0,
        "interrupted": 0,
        "runs": 1,
    }
    # The history row is written by the recorder thread, a moment after the in-memory status.
    wait_until(lambda: app.client.get("/tasks/held/runs").json(), timeout=5)
    assert [list(run) for run in app.client.get("/tasks/held/runs").json()] == [RUN_FIELDS]


TASK_FIELDS = [
    "name",
    "description",
    "enabled",
    "schedule",
    "interval_seconds",
    "at",
    "interval_overridden",
    "executor",
    "timeout_seconds",
    "next_run_at",
    "running",
    "current_run",
    "last_run",
    "last_success_at",
    "stale",
    "stats",
    "run_requests_dropped",
    "retries",
    "pending_retry",
    "trigger",
    "origin",
    "function",
    "kwargs",
]
RUN_FIELDS = [
    "run_id",
    "trigger",
    "scheduled_for",
    "started_at",
    "finished_at",
    "duration_ms",
    "outcome",
    "error",
    "replica",
    "attempt",
]
