"""A database that refuses writes while events flow: /ready, /consumer and the dashboard say so.

Before, for the whole outage /ready said 200 and /consumer `running` while nothing could be
stored (only `last_error` mentioned it). The database here is SQLite on a "full disk": the app's
connections get `PRAGMA max_page_count` = the file's current size, so every insert fails with
SQLITE_FULL ("database or disk is full") while reads, and /ready's database ping, still work,
exactly as on a full filesystem. The events are produced through the real broker and the real
server answers over HTTP; then space "returns" (new connections without the limit).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import Engine, event, select

from servicescheduler.scheduling.registry import TaskRegistry
from servicescheduler.storage.models import DeadLetter, Event
from tests.conftest import wait_until
from tests.test_consumer_kafka import _count, _events

pytestmark = pytest.mark.kafka


class _DiskFull:
    """Every new connection of `engine` may not grow the file past its current size (SQLITE_FULL)."""

    def __init__(self, engine: Engine, path: Path) -> None:
        probe = sqlite3.connect(path)
        try:
            self.pages = probe.execute("PRAGMA page_count").fetchone()[0]
        finally:
            probe.close()
        self.engine = engine
        event.listen(engine, "connect", self._limit)
        engine.dispose()  # pooled connections are replaced by limited ones

    def _limit(self, dbapi_connection, _record) -> None:
        dbapi_connection.execute(f"PRAGMA max_page_count = {self.pages}")

    def release(self) -> None:
        event.remove(self.engine, "connect", self._limit)
        self.engine.dispose()


@pytest.mark.timeout(120)
def test_a_database_refusing_writes_turns_ready_503_and_the_consumer_db_unavailable_until_it_recovers(
    live_app, kafka_settings, kafka_producer, kafka_topic, tmp_path
) -> None:
    path = tmp_path / "refusing.db"
    settings = kafka_settings(
        database_url=f"sqlite:///{path}", sqlite_busy_timeout_ms=200, consumer_backoff_cap_seconds=0.5
    )
    app = live_app(settings, TaskRegistry())
    client, database = app.client, app.application.database
    kafka_producer.send(kafka_topic, _events(50, "a"))
    wait_until(lambda: _count(database, Event) == 50, timeout=30)
    wait_until(lambda: client.get("/ready").status_code == 200, timeout=10)

    full = _DiskFull(database.engine, path)
    try:
        kafka_producer.send(kafka_topic, _events(100, "b", big="x" * 6000))  # each needs new pages
        refused = wait_until(lambda: (r := client.get("/ready")).status_code == 503 and r.json(), timeout=15)
        assert "consumer db_unavailable" in refused["detail"] and "full" in refused["detail"], refused
        assert refused["checks"]["database"] == "ok"  # reads work: only the consumer can tell
        assert "full" in refused["checks"]["consumer"]
        status = client.get("/consumer").json()
        assert status["state"] == "db_unavailable", status
        assert "cannot store events" in status["detail"] and "full" in status["detail"]
        panel = client.get("/ui/panels/consumer")
        assert panel.status_code == 200
        assert 'state-db_unavailable error-text" id="consumer-state">db_unavailable<' in panel.text
        assert 'id="consumer-detail" class="error-text">cannot store events' in panel.text
        assert _count(database, Event) < 150
    finally:
        full.release()

    wait_until(lambda: _count(database, Event) == 150, timeout=30)
    wait_until(lambda: client.get("/ready").status_code == 200, timeout=10)
    status = client.get("/consumer").json()
    assert status["state"] == "running" and "detail" not in status, status
    assert (status["events_stored"], status["duplicates_skipped"], status["dead_lettered"]) == (150, 0, 0)
    with database.read_session() as session:
        ids = list(session.scalars(select(Event.id)))
    assert sorted(ids) == sorted([f"a{i}" for i in range(50)] + [f"b{i}" for i in range(100)])
    assert _count(database, DeadLetter) == 0
    assert "db_unavailable" not in client.get("/ui/panels/consumer").text
