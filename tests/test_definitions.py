"""Declarations and configuration fail early with a message that names the culprit."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from servicescheduler.scheduling.registry import TaskDefinitionError, TaskRegistry
from servicescheduler.scheduling.triggers import Trigger, every
from servicescheduler.settings import SettingsError, load_settings
from servicescheduler.storage.db import Database
from servicescheduler.storage.migrate import upgrade


async def _async_task() -> None:
    return None


@pytest.mark.parametrize(
    "name,options,message",
    [
        ("Bad Name", {"trigger": every(5).seconds}, "task name must match"),
        ("job", {"trigger": "every 5 seconds"}, "job: invalid trigger"),
        ("job", {"trigger": every(5).seconds, "timeout": 0}, "job: timeout must be positive"),
        ("job", {"trigger": every(5).seconds, "executor": "gpu"}, "job: executor must be"),
        ("job", {"trigger": every(5)}, "job: invalid trigger: Invalid unit"),
    ],
)
def test_invalid_declarations_name_the_task(name, options, message) -> None:
    with pytest.raises(TaskDefinitionError, match=message):
        TaskRegistry().register(name, lambda: None, **options)


def test_invalid_at_time_is_rejected_by_schedule_when_declared() -> None:
    with pytest.raises(Exception, match="Invalid time format"):
        every().day.at("25:99")


def test_process_tasks_must_be_importable_plain_functions() -> None:
    with pytest.raises(TaskDefinitionError, match="proc: executor='process' needs a module-level"):
        TaskRegistry().register("proc", lambda: None, trigger=every(5).seconds, executor="process")
    with pytest.raises(TaskDefinitionError, match="needs a plain def"):
        TaskRegistry().register("proc", _async_task, trigger=every(5).seconds, executor="process")


def test_duplicate_names_are_rejected() -> None:
    registry = TaskRegistry()
    registry.register("job", lambda: None, trigger=every(5).seconds)
    with pytest.raises(TaskDefinitionError, match="job: a task with this name is already registered"):
        registry.register("job", lambda: None, trigger=every(5).seconds)


def test_trigger_descriptions_and_calendar_times() -> None:
    assert Trigger.from_job(every(30).seconds).describe() == "every 30 seconds"
    assert Trigger.from_job(every().hour).describe() == "every hour"
    assert Trigger.from_job(every(5).to(10).minutes).describe() == "every 5 to 10 minutes"
    daily = Trigger.from_job(every().day.at("03:15"))
    assert daily.describe() == "every day at 03:15:00" and daily.interval_seconds is None
    import time
    from datetime import datetime

    due = datetime.fromtimestamp(daily.next_due(None, time.time()))
    assert (due.hour, due.minute, due.second) == (3, 15, 0)
    assert 0 < due.timestamp() - time.time() <= 86400


def test_jittered_interval_stays_within_bounds_on_its_grid() -> None:
    trigger = Trigger.from_job(every(5).to(10).seconds)
    due = 0.0
    for _ in range(50):
        nxt = trigger.next_due(due, due)
        assert 5 <= nxt - due <= 10
        due = nxt


def test_until_ends_the_schedule() -> None:
    from datetime import datetime, timedelta

    job = every(1).hours.until(datetime.now() + timedelta(minutes=30))
    import time

    assert Trigger.from_job(job).next_due(None, time.time()) is None


def test_bad_settings_name_the_variable() -> None:
    with pytest.raises(SettingsError, match="WORKER_THREADS"):
        load_settings({"WORKER_THREADS": "many"})
    with pytest.raises(SettingsError, match="DATABASE_URL"):
        load_settings({"DATABASE_URL": "mysql://x"})
    with pytest.raises(SettingsError, match="TASK_CLEANUP_INTERVAL_SECONDS"):
        load_settings({"TASK_CLEANUP_INTERVAL_SECONDS": "soon"})


def test_per_task_overrides_come_from_the_environment() -> None:
    settings = load_settings({"TASK_CLEANUP_INTERVAL_SECONDS": "600", "TASK_REPORT_ENABLED": "false"})
    assert settings.task_intervals == {"cleanup": 600}
    assert settings.task_enabled == {"report": False}


def test_secrets_are_not_echoed_in_setting_errors() -> None:
    with pytest.raises(SettingsError) as error:
        load_settings({"KAFKA_SASL_PASSWORD": "hunter2", "WORKER_THREADS": "0"})
    assert "hunter2" not in str(error.value)


def test_migrations_apply_on_an_empty_database_and_are_idempotent(database_url, make_settings) -> None:
    database = Database(make_settings(database_url=database_url))
    upgrade(database.engine)
    upgrade(database.engine)
    tables = set(inspect(database.engine).get_table_names())
    database.dispose()
    assert {
        "ss_task_state",
        "ss_task_runs",
        "ss_audit_log",
        "ss_notifications",
        "ss_reports",
        "ss_events",
        "ss_dead_letters",
        "ss_alembic_version",
    } <= tables


@pytest.mark.parametrize(
    "options,message",
    [
        ({"trigger": every(5).seconds, "catch_up": True}, "job: catch_up needs a calendar trigger"),
        ({"trigger": every().day.at("03:00"), "catch_up": "yes"}, "job: catch_up must be True or False"),
    ],
)
def test_catch_up_is_validated(options, message) -> None:
    with pytest.raises(TaskDefinitionError, match=message):
        TaskRegistry().register("job", lambda: None, **options)


def test_migrated_indexes_are_the_models_indexes(database_url, make_settings) -> None:
    """Migrations and models agree on every table's indexes (an index only one of them has is a
    bug: a missing one costs queries, an extra one costs every insert)."""
    from servicescheduler.storage.models import Base

    database = Database(make_settings(database_url=database_url))
    upgrade(database.engine)
    inspector = inspect(database.engine)
    migrated = {
        (table, index["name"])
        for table in Base.metadata.tables
        for index in inspector.get_indexes(table)
        if not index.get("duplicates_constraint")  # PostgreSQL lists a unique constraint's index too
    }
    database.dispose()
    declared = {(table.name, index.name) for table in Base.metadata.tables.values() for index in table.indexes}
    assert migrated == declared
    assert ("ss_events", "ix_ss_events_type") not in migrated
