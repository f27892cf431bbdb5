"""Table names of an embedded library: the `ss_` prefix, the own version table, the renaming of a
database from before the prefix, the PostgreSQL schema option, MIGRATE_ON_START and the
`servicescheduler migrate` command."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, MetaData, func, inspect, select, text

from servicescheduler.settings import SettingsError, load_settings
from servicescheduler.storage import cluster_models  # noqa: F401 (its tables join Base.metadata)
from servicescheduler.storage.control import bump_version, channel_for
from servicescheduler.storage.db import Database
from servicescheduler.storage.events import COLUMNS, insert_new_events
from servicescheduler.storage.migrate import (
    MigrationsPendingError,
    alembic_config,
    ensure_current,
    head_revision,
    upgrade,
)
from servicescheduler.storage.models import AuditEntry, Base, Event
from servicescheduler.storage.table_names import (
    LEGACY_LAYOUT_ATTRIBUTE,
    LEGACY_VERSION_TABLE,
    VERSION_TABLE,
    VERSION_TABLE_ATTRIBUTE,
)

ROOT = Path(__file__).resolve().parent.parent
PREFIXES = ("ss_", "ix_ss_", "uq_ss_")
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
# One row for every table of revision 0004 (control_version's row comes with 0003).
LEGACY_ROWS: dict[str, dict[str, Any]] = {
    "task_state": {"name": "job", "enabled": True, "interval_seconds": 60, "updated_at": NOW, "version": 3},
    "task_runs": {"run_id": "r-1", "task": "job", "trigger": "schedule", "started_at": NOW, "outcome": "running"},
    "audit_log": {"at": NOW, "actor": "admin", "action": "disable", "target": "job", "detail": {"why": "test"}},
    "notifications": {
        "event_id": "e-1",
        "channel": "log",
        "recipient": "ops",
        "payload": {"n": 1},
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": NOW,
        "created_at": NOW,
        "updated_at": NOW,
    },
    "reports": {"created_at": NOW, "window_start": NOW, "window_end": NOW, "body": {"runs": {}}},
    "events": {
        "id": "e-1",
        "type": "order.created",
        "occurred_at": NOW,
        "received_at": NOW,
        "data": {"n": 1},
        "topic": "events",
        "partition": 0,
        "offset": 7,
    },
    "dead_letters": {
        "topic": "events",
        "partition": 0,
        "offset": 8,
        "key": b"k",
        "value": b"\xff",
        "value_truncated": False,
        "error": "not JSON",
        "created_at": NOW,
    },
    "slot_claims": {"task": "job", "scheduled_for": NOW, "replica": "a", "claimed_at": NOW},
    "task_leases": {
        "task": "job",
        "run_id": "r-1",
        "owner": "a",
        "trigger": "schedule",
        "started_at": NOW,
        "expires_at": NOW,
        "rerun": False,
    },
    "replicas": {"id": "a", "host": "h", "pid": 1, "version": "1", "started_at": NOW, "last_seen_at": NOW},
}


def build_legacy_database(engine: Engine) -> None:
    """A database as the service left it before the prefix: revision 0004, unprefixed tables,
    the version row in `alembic_version`; one row in every table."""
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes.update(
            {"connection": connection, LEGACY_LAYOUT_ATTRIBUTE: True, VERSION_TABLE_ATTRIBUTE: LEGACY_VERSION_TABLE}
        )
        command.upgrade(config, "0004")
        tables = MetaData()
        tables.reflect(connection)
        for name, row in LEGACY_ROWS.items():
            connection.execute(tables.tables[name].insert().values(**row))


def object_names(engine: Engine) -> set[str]:
    """Every table, index, constraint and sequence name of the database (PostgreSQL: of the
    connection's schema)."""
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            query = "SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
            return set(connection.execute(text(query)).scalars())
        classes = "SELECT relname FROM pg_class WHERE relnamespace = CAST(current_schema() AS regnamespace)"
        constraints = "SELECT conname FROM pg_constraint WHERE connamespace = CAST(current_schema() AS regnamespace)"
        return set(connection.execute(text(classes)).scalars()) | set(connection.execute(text(constraints)).scalars())


def test_a_database_from_before_the_prefix_keeps_every_row_under_the_new_names(database_url, make_settings) -> None:
    database = Database(make_settings(database_url=database_url))
    build_legacy_database(database.engine)

    outcome = upgrade(database.engine)

    assert (outcome.before, outcome.after, outcome.adopted) == ("0004", head_revision(), True)
    tables = set(inspect(database.engine).get_table_names())
    assert tables == {table.name for table in Base.metadata.sorted_tables} | {VERSION_TABLE}
    with database.engine.connect() as connection:
        for name, row in LEGACY_ROWS.items():
            stored = connection.execute(text(f"SELECT * FROM ss_{name}")).mappings().all()
            assert len(stored) == 1, name
            assert {key: stored[0][key] for key in row if not isinstance(row[key], datetime | dict)} == {
                key: value for key, value in row.items() if not isinstance(value, datetime | dict)
            }, name
        assert connection.execute(text("SELECT id, version FROM ss_control_version")).one() == (1, 0)
        assert connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar_one() == head_revision()
    # Indexes, constraints and sequences were renamed too: nothing keeps an unprefixed name.
    unprefixed = {name for name in object_names(database.engine) if not name.startswith(PREFIXES)}
    assert unprefixed == set()
    # The models read the rows, and a serial key counts on from the renamed sequence.
    with database.session() as session:
        assert session.get(Event, "e-1") is not None
        session.add(AuditEntry(at=NOW, actor="admin", action="enable", target="job", detail=None))
    with database.read_session() as session:
        assert session.scalars(select(AuditEntry.id).order_by(AuditEntry.id)).all() == [1, 2]
    assert upgrade(database.engine).adopted is False  # idempotent: a second run finds nothing to do
    database.dispose()


def test_the_renamed_database_has_the_models_indexes(database_url, make_settings) -> None:
    database = Database(make_settings(database_url=database_url))
    build_legacy_database(database.engine)
    upgrade(database.engine)
    inspector = inspect(database.engine)
    migrated = {
        (table, index["name"])
        for table in Base.metadata.tables
        for index in inspector.get_indexes(table)
        if not index.get("duplicates_constraint")
    }
    uniques = {(t, c["name"]) for t in Base.metadata.tables for c in inspector.get_unique_constraints(t) if c["name"]}
    database.dispose()
    assert migrated == {(table.name, index.name) for table in Base.metadata.tables.values() for index in table.indexes}
    assert ("ss_dead_letters", "uq_ss_dead_letters_position") in uniques


@pytest.mark.parametrize("host_revision", ["a1b2c3d4e5f6", "0003"])
def test_a_host_applications_own_tables_and_alembic_version_are_left_alone(
    database_url, make_settings, host_revision
) -> None:
    """A host app with its own `events` table and Alembic history (even one whose revision is
    called like ours) embeds the service: its tables and its version row stay as they were."""
    database = Database(make_settings(database_url=database_url))
    with database.engine.begin() as connection:
        connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)"))
        connection.execute(text("INSERT INTO alembic_version VALUES (:r)"), {"r": host_revision})
        connection.execute(text("CREATE TABLE events (id INTEGER PRIMARY KEY, what VARCHAR(20))"))
        connection.execute(text("CREATE TABLE reports (id INTEGER PRIMARY KEY)"))
        connection.execute(text("INSERT INTO events VALUES (1, 'host row')"))

    outcome = upgrade(database.engine)

    assert (outcome.before, outcome.adopted) == (None, False)
    with database.engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [host_revision]
        assert connection.execute(text("SELECT id, what FROM events")).all() == [(1, "host row")]
        assert connection.execute(text("SELECT count(*) FROM ss_events")).scalar_one() == 0
    assert {"events", "reports", "alembic_version", "ss_events", "ss_reports", VERSION_TABLE} <= set(
        inspect(database.engine).get_table_names()
    )
    # Nothing of ours takes an unprefixed name (PostgreSQL's implicit `<table>_pkey` included).
    hosts = {"events", "reports", "alembic_version", "events_pkey", "reports_pkey", "alembic_version_pkey"}
    assert {name for name in object_names(database.engine) if not name.startswith(PREFIXES)} <= hosts
    database.dispose()


# ----------------------------------------------------------------------------- DATABASE_SCHEMA
def test_two_services_in_two_schemas_of_one_database_stay_separate(database_url, make_settings) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("schemas are PostgreSQL's")
    import psycopg

    one = Database(make_settings(database_url=database_url, database_schema="app_one"))
    two = Database(make_settings(database_url=database_url, database_schema="app_two"))
    assert upgrade(one.engine).before is None  # creates the schema
    upgrade(two.engine)
    now = datetime.now(UTC)
    for database, ids in ((one, ["a", "b"]), (two, ["c"])):
        rows = [tuple({"id": i, "type": "t", "occurred_at": now, "received_at": now, "topic": "events",
                       "partition": 0, "offset": n, "data": None, "key": None}[c] for c in COLUMNS)
                for n, i in enumerate(ids)]  # fmt: skip
        with database.engine.begin() as connection:
            assert insert_new_events(connection, rows) == set(ids)  # raw SQL: COPY and INSERT ... SELECT
    with one.read_session() as session:
        assert session.scalars(select(Event.id).order_by(Event.id)).all() == ["a", "b"]
    with two.read_session() as session:
        assert session.scalars(select(Event.id)).all() == ["c"]
    with one.engine.connect() as connection:
        schemas = connection.execute(
            text("SELECT table_schema, count(*) FROM information_schema.tables WHERE table_name = :t GROUP BY 1"),
            {"t": "ss_events"},
        ).all()
        assert sorted(schemas) == [("app_one", 1), ("app_two", 1)]  # nothing in the default schema
    # A control change wakes the replicas of its own schema only (NOTIFY channels are per database).
    conninfo = one.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as listener:
        listener.execute(f"LISTEN {channel_for('app_two')}")
        with one.session() as session:
            bump_version(session)
        assert list(listener.notifies(timeout=0.5, stop_after=1)) == []
        with two.session() as session:
            bump_version(session)
        assert [note.payload for note in listener.notifies(timeout=10, stop_after=1)] == ["1"]
    one.dispose()
    two.dispose()


@pytest.mark.parametrize(
    "environ,message",
    [
        (
            {"DATABASE_URL": "sqlite:///x.db", "DATABASE_SCHEMA": "app"},
            "invalid setting DATABASE_SCHEMA: .*is for PostgreSQL only",
        ),
        (
            {"DATABASE_URL": "postgresql+psycopg://u@localhost/db", "DATABASE_SCHEMA": "app; DROP TABLE x"},
            "invalid setting DATABASE_SCHEMA: .*must be a lower-case identifier",
        ),
        (
            {"DATABASE_URL": "postgresql+psycopg://u@localhost/db", "DATABASE_SCHEMA": "pg_catalog"},
            "invalid setting DATABASE_SCHEMA: .*must be a lower-case identifier",
        ),
        ({"MIGRATE_ON_START": "sometimes"}, "invalid setting MIGRATE_ON_START"),
    ],
)
def test_bad_table_settings_are_refused_at_start_up(environ, message) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(environ)


def test_an_empty_schema_setting_means_the_default_schema() -> None:
    settings = load_settings({"DATABASE_URL": "sqlite:///x.db", "DATABASE_SCHEMA": ""})
    assert settings.database_schema is None and settings.migrate_on_start is True


# ----------------------------------------------------------------------------- MIGRATE_ON_START
def test_without_migrate_on_start_an_unmigrated_database_fails_with_what_to_run(database_url, make_settings) -> None:
    database = Database(make_settings(database_url=database_url, migrate_on_start=False))
    with pytest.raises(MigrationsPendingError) as error:
        ensure_current(database.engine, migrate=False)
    text_ = str(error.value)
    assert "\n" not in text_ and "run `servicescheduler migrate`" in text_ and "revision none" in text_
    assert inspect(database.engine).get_table_names() == []  # it only looked

    build_legacy_database(database.engine)
    with pytest.raises(MigrationsPendingError, match="revision 0004 in alembic_version"):
        ensure_current(database.engine, migrate=False)

    upgrade(database.engine)
    ensure_current(database.engine, migrate=False)  # migrated: start-up goes on
    database.dispose()


def test_start_up_with_migrate_on_start_false_leaves_an_unmigrated_database_alone(tmp_path, make_settings) -> None:
    from servicescheduler.scheduling.registry import TaskRegistry
    from servicescheduler.service import Application

    application = Application(make_settings(migrate_on_start=False), TaskRegistry())
    with pytest.raises(MigrationsPendingError, match="run `servicescheduler migrate`"):
        application.start()
    assert inspect(application.database.engine).get_table_names() == []
    application.stop()


# ----------------------------------------------------------------------------- the command line
def run_cli(args: list[str], environ: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DATABASE_", "MIGRATE_", "LOG_"))}
    env.update({"PYTHONPATH": str(ROOT), "LOG_LEVEL": "WARNING", **environ})
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.slow  # a subprocess or a live server for seconds: out of the fast tier
def test_servicescheduler_migrate_migrates_the_configured_database(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    first = run_cli(["-m", "servicescheduler.cli", "migrate"], {"DATABASE_URL": url}, tmp_path)
    assert first.returncode == 0, first.stderr
    assert f"migrated from revision none (empty) to {head_revision()}" in first.stdout

    again = run_cli(["-m", "servicescheduler.storage.migrate"], {"DATABASE_URL": url}, tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"already at revision {head_revision()}, nothing to do" in again.stdout

    database = Database(load_settings({"DATABASE_URL": url}))
    with database.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(Event)).scalar_one() == 0
    database.dispose()


@pytest.mark.slow  # a subprocess or a live server for seconds: out of the fast tier
def test_servicescheduler_migrate_moves_a_legacy_database(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'legacy.db'}"
    database = Database(load_settings({"DATABASE_URL": url}))
    build_legacy_database(database.engine)
    database.dispose()
    result = run_cli(["-m", "servicescheduler.cli", "migrate"], {"DATABASE_URL": url}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "moved the version row 0004 from alembic_version to ss_alembic_version" in result.stdout
    assert f"migrated from revision 0004 to {head_revision()}" in result.stdout


@pytest.mark.slow  # a subprocess or a live server for seconds: out of the fast tier
def test_servicescheduler_migrate_refuses_bad_settings_and_has_help(tmp_path) -> None:
    bad = run_cli(
        ["-m", "servicescheduler.cli", "migrate"],
        {"DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "DATABASE_SCHEMA": "app"},
        tmp_path,
    )
    assert bad.returncode == 2
    assert "invalid setting DATABASE_SCHEMA" in bad.stderr and not (tmp_path / "x.db").exists()
    helped = run_cli(["-m", "servicescheduler.cli", "--help"], {}, tmp_path)
    assert helped.returncode == 0 and "migrate" in helped.stdout
    usage = run_cli(["-m", "servicescheduler.cli"], {}, tmp_path)
    assert usage.returncode == 2 and "COMMAND" in usage.stderr
