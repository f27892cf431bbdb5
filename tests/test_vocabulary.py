"""One vocabulary: what the dashboard offers, the API accepts and the database stores are the
same values (servicescheduler/vocabulary.py), and they are the strings they were before."""

from __future__ import annotations

import re

from servicescheduler.scheduling.registry import TaskRegistry
from servicescheduler.scheduling.triggers import every
from servicescheduler.vocabulary import FINAL_OUTCOMES, STAT_NAMES, ConsumerState, RunCause, RunOutcome

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
    assert list(RunCause) == ["schedule", "startup", "catch-up", "manual", "event"]
    assert set(ConsumerState) == {
        "starting",
        "running",
        "backoff",
        "crash_looping",
        "stopping",
        "stuck",
        "disabled",
        "stopped",
    }
    assert set(STAT_NAMES) == set(FINAL_OUTCOMES)
    assert f"{RunOutcome.SUCCESS}" == str(RunOutcome.SUCCESS) == "success"
