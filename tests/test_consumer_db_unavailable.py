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
    """Every new connection of the engines may not grow the file past its current size (SQLITE_FULL)."""

    def __init__(self, engines: list[Engine], path: Path) -> None:
        probe = sqlite3.connect(path)
        try:
            self.pages = probe.execute("PRAGMA page_count").fetchone()[0]
        finally:
            probe.close()
        self.engines = engines
        for engine in engines:
            event.listen(engine, "connect", self._limit)
            engine.dispose()  # pooled connections are replaced by limited ones

    def _limit(self, dbapi_connection, _record) -> None:
        dbapi_connection.execute(f"PRAGMA max_page_count = {self.pages}")

    def release(self) -> None:
        for engine in self.engines:
            event.remove(engine, "connect", self._limit)
            engine.dispose()


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

    # The service's engine and the consumer's own (SQLite gives the consumer an engine of its own).
    full = _DiskFull([database.engine, app.application.consumer_database.engine], path)
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


def test_a_read_only_postgresql_makes_the_worker_db_unavailable_not_fatal_until_writable(
    kafka, kafka_topic, kafka_group, kafka_settings, kafka_producer, open_worker, postgres_server_url
) -> None:
    """A read-only PostgreSQL (a failed-over primary, a replica): every insert fails with
    ReadOnlySqlTransaction, an error of the system, not a transient one. Before, the worker
    raised it as fatal (restarts, then crash_looping); now it backs off, keeps its partitions
    and reports db_unavailable with the reason, and resumes by itself once writes work."""
    if postgres_server_url is None:
        pytest.skip("PostgreSQL not available (set TEST_DATABASE_URL)")
    from devtools.postgres import create_database, drop_database
    from tests.test_consumer_kafka import _committed

    name = f"ro_{kafka_group.replace('-', '_')}"
    url = create_database(postgres_server_url, name)
    try:
        worker = open_worker(kafka_settings(database_url=url, consumer_backoff_cap_seconds=0.3))
        database = worker.database
        kafka_producer.send(kafka_topic, _events(30, "a"))
        wait_until(lambda: worker.poll_once() is not None and _count(database, Event) == 30, timeout=30)

        def read_only(dbapi_connection, _record) -> None:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SET default_transaction_read_only = on")
            dbapi_connection.commit()

        event.listen(database.engine, "connect", read_only)
        database.engine.dispose()
        try:
            kafka_producer.send(kafka_topic, _events(30, "b"))

            def refused() -> bool:
                worker.poll_once()  # a fatal error would raise here
                return worker.snapshot().state == "db_unavailable"

            wait_until(refused, timeout=20)
            snapshot = worker.snapshot()
            assert "ReadOnlySqlTransaction" in (snapshot.db_error or "") or "read-only" in (snapshot.db_error or ""), (
                snapshot
            )
            assert sum(o or 0 for o in _committed(kafka.bootstrap, kafka_group, kafka_topic).values()) == 30
        finally:
            event.remove(database.engine, "connect", read_only)
            database.engine.dispose()
        wait_until(lambda: worker.poll_once() is not None and _count(database, Event) == 60, timeout=30)
        snapshot = worker.snapshot()
        assert (snapshot.state, snapshot.events_stored, snapshot.duplicates_skipped) == ("running", 60, 0)
        assert snapshot.fatal_error is None and _count(database, DeadLetter) == 0
    finally:
        drop_database(postgres_server_url, name)


@pytest.mark.timeout(120)
def test_store_ahead_on_postgresql_rewinds_both_batches_and_stores_each_event_once(
    kafka, kafka_topic, kafka_group, kafka_settings, kafka_producer, postgres_server_url, monkeypatch
) -> None:
    """KAFKA_STORE_AHEAD=auto stores ahead on PostgreSQL with kafka-python: a batch failing on the
    store thread after the next one was polled sends both back, and once writes work again every
    event is stored once and every offset committed (the SQLite test's guarantee, on PostgreSQL)."""
    if postgres_server_url is None:
        pytest.skip("PostgreSQL not available (set TEST_DATABASE_URL)")
    from devtools.postgres import create_database, drop_database
    from servicescheduler.consumers.running.worker import ConsumerWorker
    from servicescheduler.storage.db import Database
    from servicescheduler.storage.migrate import upgrade
    from tests.test_consumer_kafka import _committed

    name = f"ahead_{kafka_group.replace('-', '_')}"
    url = create_database(postgres_server_url, name)
    settings = kafka_settings(database_url=url, kafka_batch_size=50, consumer_backoff_cap_seconds=0.3)
    database = Database(settings)
    upgrade(database.engine)
    worker = ConsumerWorker(settings=settings, database=database)
    assert worker.stores_ahead  # auto, PostgreSQL, kafka-python
    rewound: list[int] = []  # messages sent back per failure (the worker's own rewind, observed)
    rewind = worker._rewind

    def observed_rewind(consumer, batches, exc):
        rewound.append(sum(len(m) for records in batches for m in records.values()))
        return rewind(consumer, batches, exc)

    monkeypatch.setattr(worker, "_rewind", observed_rewind)

    def read_only(dbapi_connection, _record) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET default_transaction_read_only = on")
        dbapi_connection.commit()

    worker.start()
    try:
        kafka_producer.send(kafka_topic, _events(50, "a"))
        wait_until(lambda: _count(database, Event) == 50, timeout=20)
        event.listen(database.engine, "connect", read_only)
        database.engine.dispose()
        try:
            kafka_producer.send(kafka_topic, _events(500, "b"))
            wait_until(lambda: any(messages > settings.kafka_batch_size for messages in rewound), timeout=20)
        finally:
            event.remove(database.engine, "connect", read_only)
            database.engine.dispose()
        wait_until(lambda: _count(database, Event) == 550, timeout=30)
        wait_until(lambda: sum(o or 0 for o in _committed(kafka.bootstrap, kafka_group, kafka_topic).values()) == 550)
        snapshot = worker.snapshot()
        assert (snapshot.events_stored, snapshot.duplicates_skipped, snapshot.dead_lettered) == (550, 0, 0)
        assert snapshot.fatal_error is None and _count(database, DeadLetter) == 0
    finally:
        assert worker.stop(5)
        database.dispose()
        drop_database(postgres_server_url, name)
