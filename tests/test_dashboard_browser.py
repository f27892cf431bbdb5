"""The dashboard in a real headless chromium against the real app served over HTTP."""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from devtools.seed_history import seed_history
from servicescheduler.scheduling.registry import TaskRegistry
from servicescheduler.scheduling.triggers import every
from servicescheduler.storage.db import Database
from servicescheduler.storage.migrate import upgrade
from servicescheduler.storage.models import DeadLetter
from servicescheduler.support.clock import utcnow
from tests.conftest import ADMIN_TOKEN, AUTH
from tests.infra.browser import README_SCREENSHOT, artifact, chromium_browser

HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"><b>bold</b>'


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from chromium_browser()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


@pytest.fixture
def release() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


def _registry(release: threading.Event) -> TaskRegistry:
    registry = TaskRegistry()
    registry.register("quick", lambda: None, trigger=every(1).hours, description="returns at once")
    registry.register(
        "blocker",
        lambda: release.wait(20),
        trigger=every(1).hours,
        enabled=False,
        description="runs until the test lets it go",
    )
    return registry


def _seeded(make_settings, **overrides):
    settings = make_settings(**overrides)
    database = Database(settings)
    upgrade(database.engine)
    seed_history(database, {"quick": 3600}, 60, typical_ms={"quick": 30})
    database.dispose()
    return settings


def _enter_token(page: Page, token: str) -> None:
    """Answers the token dialog from the keyboard."""
    dialog = page.get_by_role("dialog", name="Admin token")
    expect(dialog).to_be_visible()
    expect(page.get_by_label("Token", exact=True)).to_be_focused()
    page.keyboard.type(token)
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()


def test_toggle_from_the_keyboard_and_the_api_agrees(live_app, make_settings, page, release) -> None:
    app = live_app(make_settings(), _registry(release))
    page.goto(app.base_url + "/")
    switch = page.get_by_role("switch", name="quick enabled")
    expect(switch).to_have_attribute("aria-checked", "true")

    switch.focus()
    page.keyboard.press("Space")
    _enter_token(page, ADMIN_TOKEN)
    expect(page.locator("#msg-enabled-quick")).to_have_text("Disabled")
    expect(switch).to_have_attribute("aria-checked", "false")
    assert app.client.get("/tasks/quick").json()["enabled"] is False
    expect(page.locator("#task-quick td.next-run")).to_have_text("disabled")

    switch.click()  # the token is remembered: no second prompt
    expect(page.locator("#msg-enabled-quick")).to_have_text("Enabled")
    expect(switch).to_have_attribute("aria-checked", "true")
    assert app.client.get("/tasks/quick").json()["enabled"] is True
    replica = app.client.get("/cluster").json()["self"]
    expect(page.locator("#panel-replicas")).to_contain_text(replica)
    page.screenshot(path=artifact("dashboard-toggle.png"))


def test_run_now_shows_the_run_and_its_outcome_without_reloading(live_app, make_settings, page, release) -> None:
    app = live_app(make_settings(), _registry(release))
    assert app.scheduler.wait_idle(5)
    page.goto(app.base_url + "/")
    page.evaluate("window.__sameDocument = true")

    page.locator("#run-quick").click()
    _enter_token(page, ADMIN_TOKEN)
    message = page.locator("#msg-run-quick")
    expect(message).to_have_text(re.compile(r"^Run started \(run \w+\)$"))
    found = re.search(r"run (\w+)\)", message.inner_text())
    assert found is not None
    run_id = found.group(1)

    cell = page.locator("#task-quick td.last-outcome")
    expect(cell).to_have_attribute("data-run-id", run_id)  # arrived by the live refresh
    expect(cell.locator(".outcome")).to_have_text("success")
    assert page.evaluate("window.__sameDocument") is True, "the page was reloaded"
    assert app.scheduler.wait_idle(5)
    latest = app.client.get("/tasks/quick/runs", params={"limit": 1}).json()[0]
    assert (latest["run_id"], latest["outcome"]) == (run_id, "success")


def test_401_409_422_are_shown_in_words_next_to_the_control(live_app, make_settings, page, release) -> None:
    app = live_app(make_settings(), _registry(release))
    assert app.scheduler.wait_idle(5)
    runs_before = app.client.get("/tasks/quick").json()["stats"]["runs"]
    page.goto(app.base_url + "/")

    page.locator("#run-quick").click()
    _enter_token(page, "not-the-token")
    expect(page.locator("#msg-run-quick")).to_have_text(
        "Not authorised (401): invalid bearer token. Enter the token again on the next try."
    )
    expect(page.locator("#token-state")).to_have_text("Admin token: not entered")
    assert app.client.get("/tasks/quick").json()["stats"]["runs"] == runs_before

    interval = page.locator("#interval-quick")
    expect(page.get_by_label("Interval (s)").first).to_have_id("interval-quick")
    interval.fill("0")
    interval.press("Enter")
    _enter_token(page, ADMIN_TOKEN)  # asked again after the 401
    expect(page.locator("#msg-interval-quick")).to_have_text(
        "Invalid value (422): body.interval_seconds: Input should be greater than or equal to 1"
    )
    interval.fill("ten")
    interval.press("Enter")
    expect(page.locator("#msg-interval-quick")).to_contain_text(
        "Invalid value (422): body.interval_seconds: Input should be a valid integer"
    )
    assert app.client.get("/tasks/quick").json()["interval_seconds"] == 3600

    page.locator("#run-blocker").click()
    expect(page.locator("#msg-run-blocker")).to_contain_text("Run started")
    page.locator("#run-blocker").click()
    expect(page.locator("#msg-run-blocker")).to_have_text(
        re.compile(r"^Conflict \(409\): task 'blocker' is running \(run \w+\)$")
    )
    expect(page.locator("#task-blocker td.running")).to_contain_text("running")
    page.screenshot(path=artifact("dashboard-errors.png"))
    release.set()
    assert app.scheduler.wait_idle(10)


def test_dead_letter_values_are_shown_as_text_never_as_html(live_app, make_settings, page) -> None:
    app = live_app(make_settings(), TaskRegistry())
    with app.application.database.session() as session:
        session.add(
            DeadLetter(
                topic="events",
                partition=2,
                offset=41,
                key=b"k<i>1</i>",
                value=HOSTILE.encode(),
                error="schema: <b>not bold</b>",
                created_at=utcnow(),
            )
        )
    page.goto(app.base_url + "/")
    row = page.locator(".dead-letters tbody tr").first
    expect(row.locator("pre.preview")).to_have_text(HOSTILE)
    expect(row.locator("td.error-text")).to_have_text("schema: <b>not bold</b>")
    assert row.locator("script, img, b, i").count() == 0
    assert page.evaluate("window.__pwned") is None
    assert app.client.get("/consumer/dead-letters").json()[0]["value_preview"] == HOSTILE


def test_task_page_pages_filters_and_shows_errors_and_audit(live_app, make_settings, page, release) -> None:
    app = live_app(_seeded(make_settings), _registry(release))
    assert app.client.post("/tasks/quick/disable", headers=AUTH).status_code == 200
    page.goto(app.base_url + "/")
    page.get_by_role("link", name="quick", exact=True).click()
    expect(page).to_have_url(app.base_url + "/ui/tasks/quick")

    expect(page.locator("table.runs tbody tr")).to_have_count(25)
    expect(page.locator("svg.duration-chart rect")).to_have_count(60)
    expect(page.locator("section", has_text="Audit trail").locator("tbody tr").first).to_contain_text("disable")
    page.get_by_role("link", name="Older →").click()
    expect(page).to_have_url(re.compile(r"page=2$"))
    expect(page.locator("table.runs tbody tr")).to_have_count(25)
    page.get_by_role("link", name="Older →").click()
    expect(page.locator("table.runs tbody tr")).to_have_count(10)
    expect(page.get_by_role("link", name="Older →")).to_have_count(0)

    page.get_by_label("Outcome", exact=True).select_option("error")
    page.get_by_role("button", name="Filter").click()
    errors = app.client.get("/tasks/quick/runs", params={"outcome": "error", "limit": 25}).json()
    assert errors, "the seeded history has failed runs"
    expect(page.locator("table.runs tbody tr")).to_have_count(len(errors))
    first = page.locator("table.runs tbody tr").first
    expect(first.locator(".outcome")).to_have_text("error")
    first.locator("summary").click()
    expect(first.locator("details pre")).to_have_text(errors[0]["error"])
    page.screenshot(path=artifact("task-page.png"), full_page=True)


def _seed_built_in_history(settings) -> None:
    database = Database(settings)
    upgrade(database.engine)
    periods = {"notifications": 30, "cleanup": 300, "report": 900}
    seed_history(database, periods, 50, typical_ms={"notifications": 45, "cleanup": 180, "report": 320})
    database.dispose()


def _produce_in_bursts(producer, topic: str) -> None:
    """Events in bursts for ~12 s (bounded), so the throughput chart has several samples; two of the
    bursts carry a hostile non-JSON value and a truncated JSON value (both dead-lettered)."""
    for burst in range(12):
        events = [
            {"id": f"ord-{burst}-{i}", "type": "order.created", "data": {"order_id": burst * 100 + i}}
            for i in range(20 + 15 * (burst % 4))
        ]
        producer.send(topic, events)
        if burst in (3, 8):
            producer.send(topic, [HOSTILE.encode(), b'{"id": "broken", "type": '])
        threading.Event().wait(1.0)  # paces the producer (not a synchronisation)


@pytest.mark.kafka
@pytest.mark.slow
def test_screenshot_with_the_built_in_tasks_and_a_live_consumer(
    live_app, kafka_settings, kafka_producer, kafka_topic, browser, monkeypatch
) -> None:
    """The README's picture: built-in tasks with a seeded history, events flowing, dead letters."""
    monkeypatch.setattr(
        "servicescheduler.consumers.running.throughput.SAMPLE_SECONDS", 1.0
    )  # a chart within the test's 12 s
    settings = kafka_settings()
    _seed_built_in_history(settings)
    app = live_app(settings)  # the built-in registry (services/)
    assert sorted(t["name"] for t in app.client.get("/tasks").json()) == ["cleanup", "notifications", "report"]

    _produce_in_bursts(kafka_producer, kafka_topic)

    for scheme in ("light", "dark"):
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, color_scheme=scheme)
        page = context.new_page()
        page.goto(app.base_url + "/")
        expect(page.locator("#consumer-state")).to_have_text("running", timeout=20_000)
        expect(page.locator(".dead-letters tbody tr")).to_have_count(4, timeout=20_000)
        hostile = page.locator(".dead-letters pre.preview", has_text="<script>").first
        expect(hostile).to_have_text(HOSTILE)
        assert page.locator(".dead-letters script").count() == 0
        assert page.evaluate("window.__pwned") is None
        expect(page.locator("svg.rate rect").first).to_be_attached(timeout=20_000)
        path = artifact(f"dashboard-{scheme}.png")
        page.screenshot(path=path, full_page=True)
        context.close()
    if os.environ.get("UPDATE_README_SCREENSHOT"):
        shutil.copyfile(artifact("dashboard-light.png"), README_SCREENSHOT)


def test_page_says_when_it_stops_being_live(live_app, make_settings, page, release) -> None:
    app = live_app(make_settings(), _registry(release))
    page.goto(app.base_url + "/")
    status = page.locator("#live-status")
    expect(status).to_have_text(re.compile(r"^Live: updated \d\d:\d\d:\d\d UTC$"))
    app.stop()  # the service goes away under an open page
    expect(status).to_have_text(
        re.compile(
            r"^Not live: the service does not answer\. Showing data from "
            r"\d\d:\d\d:\d\d UTC; retrying every 2 s\.$"
        )
    )
    expect(status).to_have_attribute("role", "alert")
    page.locator("#run-quick").click()
    _enter_token(page, ADMIN_TOKEN)
    expect(page.locator("#msg-run-quick")).to_contain_text("No answer from the service")


def test_create_a_runtime_task_from_the_form_then_delete_it(live_app, make_settings, page, release) -> None:
    registry = _registry(release)

    @registry.function("send-report")
    def send_report(ctx, *, region: str) -> None:
        """Sends the daily report of one region."""

    app = live_app(make_settings(), registry)
    page.goto(app.base_url + "/")
    page.get_by_label("Name").fill("report-eu")
    expect(page.get_by_label("Function")).to_contain_text("send-report(*, region: str)")
    page.get_by_label("Cron line or interval (s)").fill("0 3 * * *")
    page.get_by_label("Time zone").fill("Europe/Berlin")
    page.get_by_label("Arguments (JSON)").fill('{"colour": "red"}')
    page.get_by_role("button", name="Create").click()
    _enter_token(page, ADMIN_TOKEN)
    expect(page.locator("#msg-create")).to_contain_text("Invalid value (422): kwargs do not fit send-report")

    page.get_by_label("Arguments (JSON)").fill('{"region": "eu"}')
    page.get_by_role("button", name="Create").click()
    expect(page.locator("#msg-create")).to_have_text("Created")
    row = page.locator("#task-report-eu")
    expect(row).to_contain_text("cron '0 3 * * *' Europe/Berlin")  # arrived by the live refresh
    expect(row).to_contain_text("created at runtime from send-report")
    assert app.client.get("/tasks/report-eu").json()["kwargs"] == {"region": "eu"}
    expect(page.locator("#delete-quick")).to_have_count(0)  # declared in code: no delete button

    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#delete-report-eu").click()
    expect(row).to_have_count(0)
    assert app.client.get("/tasks/report-eu").status_code == 404
    page.screenshot(path=artifact("dashboard-runtime-task.png"))
