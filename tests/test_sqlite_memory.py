"""SQLite's memory is bounded by the pool, not by the database's size: every pooled connection keeps
its own page cache, and the soak's RSS grew while each of a dozen connections filled one
(docs/reliability.md). Measured with SQLite's own counter of its heap (`sqlite3_memory_used`)."""

from __future__ import annotations

import contextlib

from sqlalchemy import text
from sqlalchemy.pool import QueuePool

from bench.soak.heap import MIB, connection_memory, sqlite_library
from servicescheduler.settings import load_settings
from servicescheduler.storage.db import SQLITE_CACHE_KIB, SQLITE_POOL_KEPT, Database

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


def test_a_burst_of_connections_leaves_only_the_kept_ones_open(tmp_path) -> None:
    """Every pooled connection ends up holding the consumer's big prepared statements (the pool
    hands out whichever was returned last), so the number kept open bounds that memory."""
    sqlite = sqlite_library()
    assert sqlite is not None
    database = Database(load_settings({"DATABASE_URL": f"sqlite:///{tmp_path / 'pool.db'}"}))
    burst = SQLITE_POOL_KEPT * 3
    statement = "SELECT " + ", ".join("?" * 1000)  # a big statement each connection caches
    pool = database.engine.pool
    assert isinstance(pool, QueuePool)
    try:
        with contextlib.ExitStack() as held:
            readers = database.engine.execution_options(sqlite_read_only=True)
            for connection in [held.enter_context(readers.connect()) for _ in range(burst)]:
                connection.exec_driver_sql(statement, tuple(range(1000))).fetchall()
            assert pool.checkedout() == burst  # the burst is served, not queued
        assert pool.checkedin() <= SQLITE_POOL_KEPT
        assert connection_memory(sqlite)["sqlite_connections"] <= SQLITE_POOL_KEPT
    finally:
        database.dispose()
