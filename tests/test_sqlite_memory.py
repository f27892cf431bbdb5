"""SQLite's memory is bounded by the pool, not by the database's size: every pooled connection keeps
its own page cache, and the soak's RSS grew while each of a dozen connections filled one
(docs/reliability.md). Measured with SQLite's own counter of its heap (`sqlite3_memory_used`)."""

from __future__ import annotations

import contextlib
from typing import Any

from sqlalchemy import text

from bench.soak.heap import MIB, connection_memory, sqlite_library
from servicescheduler.scheduling.registry import TaskRegistry
from servicescheduler.settings import load_settings
from servicescheduler.storage.db import SQLITE_CACHE_KIB, SQLITE_CACHED_STATEMENTS, Database
from servicescheduler.storage.migrate import upgrade

CONNECTIONS = 6
TABLE_MIB = 8  # four times SQLite's default cache, so a full scan fills any cache


def test_each_pooled_connection_caches_at_most_its_bounded_page_cache(tmp_path) -> None:
    sqlite = sqlite_library()
    assert sqlite is not None, "libsqlite3 not found in this process"
    database = Database(load_settings({"DATABASE_URL": f"sqlite:///{tmp_path / 'cache.db'}"}))
    try:
        with database.engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE pad (id INTEGER PRIMARY KEY, data BLOB)")
            rows = [{"data": bytes(3000)} for _ in range(TABLE_MIB * MIB // 3000)]
            connection.execute(text("INSERT INTO pad (data) VALUES (:data)"), rows)
        database.dispose()  # the writer's cache gone: what follows is the readers' only

        before = sqlite.sqlite3_memory_used()
        with contextlib.ExitStack() as held:
            # All at once, as under load: the pool opens that many connections and keeps them.
            readers = database.engine.execution_options(sqlite_read_only=True)  # BEGIN, not BEGIN IMMEDIATE
            connections = [held.enter_context(readers.connect()) for _ in range(CONNECTIONS)]
            for connection in connections:
                assert connection.exec_driver_sql("PRAGMA cache_size").scalar() == -SQLITE_CACHE_KIB
                assert connection.exec_driver_sql("SELECT sum(length(data)) FROM pad").scalar() > TABLE_MIB * MIB / 2
        grown = (sqlite.sqlite3_memory_used() - before) / MIB
        # Each connection's cache plus its schema and statements (~0.1 MiB); SQLite's default
        # would be 2 MiB each, 12 MiB here.
        assert grown < CONNECTIONS * (SQLITE_CACHE_KIB / 1024 + 0.25), f"SQLite's heap grew {grown:.1f} MiB"
    finally:
        database.dispose()


def test_the_consumers_bulk_inserts_are_prepared_on_its_own_engine_only(tmp_path) -> None:
    """The consumer's multi-row INSERTs are MiB-sized prepared statements: on the shared pool every
    connection ended up holding them (the soak's RSS growth); on its own engine, only its own do."""
    from servicescheduler.service import Application
    from servicescheduler.storage.events import event_row, insert_new_events
    from servicescheduler.support.clock import utcnow

    def row(event_id: str) -> tuple:
        now = utcnow()
        return event_row(
            {
                "id": event_id,
                "type": "t",
                "occurred_at": now,
                "received_at": now,
                "data": {"n": 1},
                "key": None,
                "topic": "events",
                "partition": 0,
                "offset": 0,
            }
        )

    sqlite = sqlite_library()
    assert sqlite is not None
    settings = load_settings(
        {"DATABASE_URL": f"sqlite:///{tmp_path / 'split.db'}", "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"},
        admin_token="t",
    )
    application = Application(settings, TaskRegistry())
    try:
        upgrade(application.database.engine)
        consumer_db = application.consumer_database
        assert consumer_db is not application.database  # what the consumer's worker writes through
        assert application.consumer is not None
        worker: Any = application.consumer._factory()  # the worker the supervisor would start
        assert worker.database is consumer_db
        for size in (1000, 500, 250):  # three statement sizes, as batches of a busy stream
            rows = [row(f"{size}-{i}") for i in range(size)]
            with consumer_db.engine.begin() as connection:
                insert_new_events(connection, rows)
        consumer_memory = connection_memory(sqlite)["sqlite_statements_mib"]
        assert consumer_memory > 0.5, consumer_memory  # the big statements exist, on its connection
        with contextlib.ExitStack() as held:  # a burst on the service's own pool
            readers = application.database.engine.execution_options(sqlite_read_only=True)
            for connection in [held.enter_context(readers.connect()) for _ in range(12)]:
                connection.exec_driver_sql("SELECT count(*) FROM ss_events").scalar()
            burst_memory = connection_memory(sqlite)["sqlite_statements_mib"]
        assert burst_memory - consumer_memory < 0.25, (consumer_memory, burst_memory)
    finally:
        application.consumer_database.dispose()
        application.database.dispose()


def test_a_connection_keeps_a_bounded_number_of_prepared_statements(tmp_path) -> None:
    """Statements whose text varies (an IN list per length) filled the driver's 128-entry cache on
    every pooled connection: the 30-minute soak's SQLite statements grew 3.8 -> 15 MiB."""
    sqlite = sqlite_library()
    assert sqlite is not None, "libsqlite3 not found in this process"
    database = Database(load_settings({"DATABASE_URL": f"sqlite:///{tmp_path / 'stmts.db'}"}))
    try:
        with database.engine.connect() as connection:
            connection.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY)")
            held = []
            marks = ", ".join("?" * 100)
            for n in range(200):  # 200 distinct texts of one size
                connection.exec_driver_sql(f"SELECT id FROM t WHERE id IN ({marks}) AND {n} = {n}", tuple(range(100)))
                held.append(connection_memory(sqlite)["sqlite_statements_mib"])
        # Bounded by the cache's size: the memory of SQLITE_CACHED_STATEMENTS statements stays
        # flat after them (at the driver's default it kept growing up to the 128th).
        full = held[SQLITE_CACHED_STATEMENTS + 4]
        assert held[-1] <= full * 1.1 + 0.01, held[:: len(held) // 10]
    finally:
        database.dispose()


def test_the_run_history_reads_existing_rows_with_few_distinct_statements(tmp_path) -> None:
    """The recorder's batches vary in size; its IN list is padded to a power of two, so every batch
    size from 1 to 100 prepares at most 8 texts (one per size before: 100)."""
    from sqlalchemy import event

    from servicescheduler.storage.history import store_history
    from servicescheduler.storage.records import RunRecord
    from servicescheduler.vocabulary import RunOutcome

    database = Database(load_settings({"DATABASE_URL": f"sqlite:///{tmp_path / 'history.db'}"}))
    upgrade(database.engine)
    texts: set[str] = set()

    def seen(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if "ss_task_runs.run_id IN" in " ".join(statement.split()):
            texts.add(statement)

    event.listen(database.engine, "before_cursor_execute", seen)
    try:
        for size in range(1, 101):
            runs = [
                RunRecord(f"run-{size}-{i}", "job", "schedule", 1000.0, 1000.0, 1001.0, RunOutcome.SUCCESS)
                for i in range(size)
            ]
            with database.session() as session:
                store_history(session, runs, [])
        with database.session() as session:
            assert session.execute(text("SELECT count(*) FROM ss_task_runs")).scalar() == 5050
        assert 0 < len(texts) <= 8, f"{len(texts)} distinct IN statements"
    finally:
        database.dispose()
