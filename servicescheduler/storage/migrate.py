"""Applies the Alembic migrations (shipped in `migrations/`, package data) to a database.

`servicescheduler migrate` (cli.py; `python -m servicescheduler.storage.migrate` too) does it
from the command line; start-up calls `ensure_current()`: it migrates, or with
MIGRATE_ON_START=false only checks that someone did.

The version is kept in `ss_alembic_version`, so that a host application's own Alembic history
(`alembic_version`) is never read or written. A database of this service from before that table
(revisions 0001-0004, "the legacy layout") has its version row moved over first; migration 0005
then renames its tables (storage/table_names.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, inspect, text
from sqlalchemy.pool import NullPool

from servicescheduler.errors import StartupError
from servicescheduler.logs import get_logger
from servicescheduler.storage.db import SCHEMA_OPTION
from servicescheduler.storage.table_names import (
    CURRENT,
    LEGACY,
    LEGACY_LAYOUT_ATTRIBUTE,
    LEGACY_REVISIONS,
    LEGACY_VERSION_TABLE,
    VERSION_TABLE,
)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Replicas start together: one migrates, the others wait on this lock, then find nothing to do.
ADVISORY_LOCK = 74290311
# The tables revision 0001 created: a legacy `alembic_version` is ours only if they are all there
# (a host's own Alembic revision may be called "0001" too).
LEGACY_TABLES = ("task_state", "task_runs", "audit_log", "notifications", "reports", "events", "dead_letters")

log = get_logger(__name__)


class MigrationsPendingError(StartupError):
    """The database is not at the revision this version needs (and start-up may not migrate it)."""


@dataclass(frozen=True)
class Migration:
    """What `upgrade()` did: the revision before and after, and whether the legacy version row moved."""

    before: str | None
    after: str | None
    adopted: bool


def alembic_config() -> Config:
    """The Alembic configuration of the package: no ini file, the scripts beside this module."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    """The revision this version of the service needs."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None  # the package ships its scripts
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision in `ss_alembic_version` (None: never migrated, or still in the legacy layout)."""
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> Migration:
    """Migrates the database behind `engine` to `revision` (idempotent), creating its PostgreSQL
    schema first when DATABASE_SCHEMA names one that does not exist."""
    _create_schema(engine)
    config = alembic_config()
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text(f"SELECT pg_advisory_xact_lock({ADVISORY_LOCK})"))
        config.attributes["connection"] = connection
        legacy = legacy_revision(connection)
        if legacy is not None:
            # Same transaction as the renames: a failure leaves the database as it was.
            command.stamp(config, legacy)
            connection.execute(text(f"DROP TABLE {LEGACY_VERSION_TABLE}"))
            log.info("migration_version_table_moved", revision=legacy, old=LEGACY_VERSION_TABLE, new=VERSION_TABLE)
        before = current_revision(connection)
        config.attributes[LEGACY_LAYOUT_ATTRIBUTE] = _legacy_layout(connection, before)
        command.upgrade(config, revision)
        after = current_revision(connection)
    return Migration(before=before, after=after, adopted=legacy is not None)


def legacy_revision(connection: Connection) -> str | None:
    """This service's revision in the legacy `alembic_version`, or None when that table is absent,
    is a host's (another revision, or our tables missing), or `ss_alembic_version` exists."""
    inspector = inspect(connection)
    if inspector.has_table(VERSION_TABLE) or not inspector.has_table(LEGACY_VERSION_TABLE):
        return None
    rows = connection.execute(text(f"SELECT version_num FROM {LEGACY_VERSION_TABLE}")).scalars().all()
    if len(rows) != 1 or rows[0] not in LEGACY_REVISIONS:
        return None
    if not all(inspector.has_table(LEGACY.table(name)) for name in LEGACY_TABLES):
        return None
    return str(rows[0])


def _legacy_layout(connection: Connection, revision: str | None) -> bool:
    """True while the tables still have their unprefixed names (revision below 0005 and no
    `ss_task_state`, which every revision from 0001 on creates in the current layout)."""
    return revision in LEGACY_REVISIONS and not inspect(connection).has_table(CURRENT.table("task_state"))


def _create_schema(engine: Engine) -> None:
    """Creates the DATABASE_SCHEMA schema if missing, on a connection of its own: the engine's own
    connections name it in their search_path, which must exist before their first use."""
    schema = engine.get_execution_options().get(SCHEMA_OPTION)
    if not schema:
        return
    side = create_engine(engine.url, poolclass=NullPool)
    try:
        with side.begin() as connection:
            connection.execute(text(f"SELECT pg_advisory_xact_lock({ADVISORY_LOCK})"))
            exists = connection.scalar(text("SELECT 1 FROM pg_namespace WHERE nspname = :name"), {"name": schema})
            if not exists:  # checked first: CREATE ... IF NOT EXISTS needs the CREATE privilege anyway
                connection.execute(text(f'CREATE SCHEMA "{schema}"'))
                log.info("database_schema_created", schema=schema)
    finally:
        side.dispose()


def check_current(engine: Engine) -> None:
    """Raises MigrationsPendingError (one line, saying what to run) unless the database is at head."""
    head = head_revision()
    with engine.execution_options(sqlite_read_only=True).connect() as connection:
        current = current_revision(connection)
        legacy = legacy_revision(connection) if current is None else None
    if current == head:
        return
    found = f"revision {legacy} in {LEGACY_VERSION_TABLE}" if legacy else f"revision {current or 'none'}"
    message = (
        f"the database is not migrated ({found}; this version needs {head}) and MIGRATE_ON_START is false: "
        "run `servicescheduler migrate`"
    )
    log.error("migrations_pending", current=current, legacy=legacy, head=head)
    raise MigrationsPendingError(message)


def ensure_current(engine: Engine, *, migrate: bool) -> None:
    """Start-up: migrates (MIGRATE_ON_START=true) or checks that the database is migrated."""
    if migrate:
        upgrade(engine)
    else:
        check_current(engine)


if __name__ == "__main__":
    import importlib

    # `python -m servicescheduler.storage.migrate` is `servicescheduler migrate`. Looked up at run
    # time: the command line imports this module, not the other way round.
    raise SystemExit(importlib.import_module("servicescheduler.cli").main(["migrate"]))
