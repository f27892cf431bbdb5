"""Engine and session factory. One `Database` per app; sessions per unit of work, never shared."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from servicescheduler.settings import Settings

# SQLite connections the service's pool keeps open between uses, and at most (bursts: 20 tasks due
# in one second, the API's thread pool). Kept, not churned: a connection closed while another holds
# a lock keeps its descriptor until the lock goes (the 30-minute soak's descriptors +6).
SQLITE_POOL_KEPT = 20
SQLITE_POOL_MAX = 40
# The consumer's own engine (Database(..., for_consumer=True)): its thread and the store-ahead
# thread. Its multi-row INSERTs (storage/events.py) are prepared statements of ~2.3 MiB per
# connection; on the shared pool every connection took its turn at them (the pool hands out
# whichever was returned last), 25 MiB over the soak's 11 connections, its RSS growth.
SQLITE_CONSUMER_POOL_KEPT = 2
SQLITE_CONSUMER_POOL_MAX = 4

# Page cache per SQLite connection, in KiB (SQLite's default: 2,000 KiB each). WAL drops a
# connection's cache whenever another one wrote, so caches rarely fill in the service; bounded
# anyway, so that connections held by long readers cannot take 2 MiB each.
SQLITE_CACHE_KIB = 512
# The driver's per-connection LRU of prepared statements (Python's default: 128). A statement whose
# text varies with its arity (an IN list, a multi-row VALUES) is a new entry per arity; at the
# default, the 30-minute soak's connections kept filling theirs: SQLite's statements grew 3.8 -> 15 MiB.
# The app's hot statements per connection are far fewer than this.
SQLITE_CACHED_STATEMENTS = 32

# Engine execution option naming the PostgreSQL schema (DATABASE_SCHEMA) that storage/migrate.py creates.
SCHEMA_OPTION = "servicescheduler_schema"


def utcnow() -> datetime:
    """The current time as a timezone-aware UTC datetime."""
    return datetime.now(UTC)


def _sqlite_engine(url: str, busy_timeout_ms: int, *, kept: int, most: int) -> Engine:
    """A SQLite engine in WAL mode with a busy timeout, its directory created."""
    parsed = make_url(url)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={
            "check_same_thread": False,
            "timeout": busy_timeout_ms / 1000,
            "cached_statements": SQLITE_CACHED_STATEMENTS,
        },
        # The driver's own transaction handling is switched off so that we can say BEGIN
        # IMMEDIATE: a deferred transaction that reads, then writes, fails at once with
        # SQLITE_BUSY (no busy-wait) when another writer committed in between.
        isolation_level=None,
        # Bound values are event data: never part of an error text or a log line.
        hide_parameters=True,
        pool_size=kept,
        max_overflow=most - kept,
        # The most recently returned connection first: a sequential user such as the consumer
        # keeps reusing one connection (and its prepared statements, a few MiB for the bulk
        # insert) instead of rotating through every pooled one.
        pool_use_lifo=True,
    )

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get("sqlite_read_only") is not True
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        cursor = dbapi_connection.cursor()
        # WAL lets readers (API, reports) run beside the one writer; NORMAL sync is safe in WAL.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")  # negative: KiB, not pages
        cursor.close()

    return engine


class Database:
    """Owns the engine and hands out sessions (`session()` context manager) for one unit of work."""

    def __init__(self, settings: Settings, *, for_consumer: bool = False) -> None:
        """`for_consumer`: the Kafka consumer's own engine on SQLite (a small pool of its own, see
        SQLITE_CONSUMER_POOL_KEPT); on PostgreSQL the same engine as the service's."""
        url = settings.database_url
        if url.startswith("sqlite"):
            kept, most = (
                (SQLITE_CONSUMER_POOL_KEPT, SQLITE_CONSUMER_POOL_MAX)
                if for_consumer
                else (SQLITE_POOL_KEPT, SQLITE_POOL_MAX)
            )
            self.engine = _sqlite_engine(url, settings.sqlite_busy_timeout_ms, kept=kept, most=most)
        else:
            if url.startswith("postgresql://"):
                url = "postgresql+psycopg://" + url[len("postgresql://") :]
            schema = settings.database_schema
            self.engine = create_engine(
                url,
                pool_size=settings.database_pool_size,
                max_overflow=settings.database_pool_size,
                pool_pre_ping=True,
                hide_parameters=True,  # bound values are event data: never in an error text
                # Every statement, raw SQL included (the COPY and multi-row INSERTs of events.py),
                # resolves unqualified table names in the schema: the search_path names only it.
                connect_args={"options": f"-csearch_path={schema}"} if schema else {},
                execution_options={SCHEMA_OPTION: schema} if schema else {},
            )
        self.session_factory = sessionmaker(self.engine, expire_on_commit=False)
        self.read_session_factory = sessionmaker(
            self.engine.execution_options(sqlite_read_only=True), expire_on_commit=False
        )

    @property
    def schema(self) -> str | None:
        """The PostgreSQL schema of the tables (DATABASE_SCHEMA), None for the connection's default."""
        value = self.engine.get_execution_options().get(SCHEMA_OPTION)
        return str(value) if value else None

    @property
    def dialect(self) -> str:
        """`sqlite` or `postgresql`."""
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction: committed on success, rolled back on error, always closed."""
        with self.session_factory() as session, session.begin():
            yield session

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A session for reads only: on SQLite it does not take the write lock."""
        with self.read_session_factory() as session, session.begin():
            yield session

    def ping(self) -> None:
        """Raises if the database does not answer a trivial query."""
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def dispose(self) -> None:
        """Closes pooled connections."""
        self.engine.dispose()
