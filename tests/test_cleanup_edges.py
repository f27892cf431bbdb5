"""Retention keeps up: cleanup loops in batches until done or out of time, prunes the audit log,
and deletes a 1,000 events/s backlog well within its budget (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from devtools.seed_history import insert_expired
from servicescheduler.builtin.cleanup import purge
from servicescheduler.storage.models import AuditEntry, Event, TaskRun
from servicescheduler.support.clock import utcnow

INGEST_EVENTS_PER_SECOND = 1000
CLEANUP_INTERVAL_SECONDS = 300  # the cleanup task's schedule (every 5 minutes)


def _count(database, model) -> int:
    with database.read_session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_cleanup_loops_until_every_expired_row_is_gone(database_url, make_settings, migrated) -> None:
    database = migrated(database_url)
    insert_expired(database, events=12_000, runs=500)
    settings = make_settings(database_url=database_url, retention_batch_size=100)
    result = purge(database=database, settings=settings)
    assert result.complete
    assert result.deleted["events"] == 12_000 and result.deleted["task_runs"] == 500
    assert _count(database, Event) == 0 and _count(database, TaskRun) == 0


def test_cleanup_prunes_the_audit_log(database_url, make_settings, migrated) -> None:
    database = migrated(database_url)
    now = utcnow()
    with database.session() as session:
        session.add_all(
            [
                AuditEntry(at=now - timedelta(days=age), actor="admin", action="disable", target="t")
                for age in (200, 120, 10)
            ]
        )
    settings = make_settings(database_url=database_url, retention_audit_days=90)
    assert purge(database=database, settings=settings).deleted["audit_log"] == 2
    with database.read_session() as session:
        assert [entry.at.date() for entry in session.scalars(select(AuditEntry))] == [(now - timedelta(days=10)).date()]


def test_cleanup_stops_at_its_time_budget_and_says_so(database_url, make_settings, migrated) -> None:
    database = migrated(database_url)
    insert_expired(database, events=3_000, runs=0)
    settings = make_settings(database_url=database_url, retention_batch_size=100, retention_time_budget_seconds=0.001)
    result = purge(database=database, settings=settings)
    assert not result.complete
    assert 100 <= result.deleted["events"] < 3_000  # progress, then it stopped
    assert _count(database, Event) == 3_000 - result.deleted["events"]


@pytest.mark.slow
def test_cleanup_keeps_up_with_1000_events_per_second(database_url, make_settings, migrated, capsys) -> None:
    """60,000 expired events and 60,000 expired runs (a minute at 1,000 events/s, plus a run per
    event) go in one cleanup run with the default settings. To keep up, one run every 5 minutes
    must delete 300,000 events within its budget: the measured rate must be at least that."""
    database = migrated(database_url)
    insert_expired(database, events=60_000, runs=60_000)
    settings = make_settings(database_url=database_url)
    started = time.perf_counter()
    result = purge(database=database, settings=settings)
    seconds = time.perf_counter() - started
    rows = sum(result.deleted.values())
    assert result.complete and rows == 120_000
    assert _count(database, Event) == 0 and _count(database, TaskRun) == 0
    rate = rows / seconds
    needed = INGEST_EVENTS_PER_SECOND * CLEANUP_INTERVAL_SECONDS / settings.retention_time_budget_seconds
    with capsys.disabled():
        print(
            "\n"
            + json.dumps(
                {
                    "cleanup_benchmark": database.dialect,
                    "rows": rows,
                    "seconds": round(seconds, 2),
                    "rows_per_second": round(rate),
                    "needed_rows_per_second": round(needed),
                }
            )
        )
    assert rate >= needed, f"{rate:.0f} rows/s < {needed:.0f} rows/s needed"
