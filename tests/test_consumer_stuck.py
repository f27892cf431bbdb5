"""A handler that hangs: reported `stuck`, and a restart never runs a second consumer beside it."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from servicescheduler.consumers.storing.handlers import handlers
from servicescheduler.scheduling.registry import TaskRegistry
from servicescheduler.storage.models import Event
from tests.conftest import AUTH, wait_until

pytestmark = pytest.mark.kafka


def _consumer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "kafka-consumer" and t.is_alive()]


@pytest.mark.slow  # over 8 s (--durations)
@pytest.mark.timeout(120)
def test_hanging_handler_is_reported_stuck_and_restart_waits_for_its_thread(
    live_app, kafka_topic, kafka_settings, kafka_producer, monkeypatch
) -> None:
    release = threading.Event()
    entered = threading.Event()

    def hang(batch, event, meta) -> None:
        entered.set()
        assert release.wait(60), "test never released the handler"

    monkeypatch.setitem(handlers._handlers, "test.hang", (hang, True))
    app = live_app(kafka_settings(kafka_handler_timeout_seconds=0.5, kafka_stop_timeout_seconds=1), TaskRegistry())
    try:
        kafka_producer.send(kafka_topic, [{"id": "h1", "type": "test.hang"}])
        assert entered.wait(30)
        status = wait_until(
            lambda: (body := app.client.get("/consumer").json())["state"] == "stuck" and body, timeout=10
        )
        assert "h1" in status["last_error"] and "limit 0.5 s" in status["last_error"]
        assert app.client.get("/ready").status_code in (200, 503)  # answers while stuck

        restarted = app.client.post("/consumer/restart", headers=AUTH)
        assert restarted.status_code == 200 and restarted.json()["state"] == "stuck"
        assert len(_consumer_threads()) == 1  # the old thread still runs: no second consumer
        disabled_enabled = app.client.post("/consumer/enable", headers=AUTH).json()
        assert disabled_enabled["state"] == "stuck" and len(_consumer_threads()) == 1
    finally:
        release.set()
    wait_until(lambda: app.client.get("/consumer").json()["state"] == "running", timeout=30)
    assert len(_consumer_threads()) == 1
    with app.application.database.read_session() as session:
        assert session.scalar(select(func.count()).select_from(Event).where(Event.id == "h1")) == 1
    kafka_producer.send(kafka_topic, [{"id": "after", "type": "order.created"}])

    def stored_after() -> bool:
        with app.application.database.read_session() as session:
            return session.scalar(select(func.count()).select_from(Event).where(Event.id == "after")) == 1

    wait_until(stored_after, timeout=30)
