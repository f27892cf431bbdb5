"""Built-in tasks doing real work on the database (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import func, select

from devtools.webhook import WebhookReceiver
from servicescheduler.builtin.cleanup import purge
from servicescheduler.builtin.notifications import deliver_pending
from servicescheduler.builtin.report import build_report, latest_report
from servicescheduler.storage.models import Event, Notification, Report, TaskRun
from servicescheduler.support.clock import utcnow


def _notification(event_id: str, channel: str = "webhook", **values) -> Notification:
    now = utcnow()
    fields = dict(
        event_id=event_id,
        channel=channel,
        recipient="ops@example.com",
        payload={"type": "order.created"},
        status="pending",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
    )
    fields.update(values)
    return Notification(**fields)


def _statuses(database) -> dict[str, str]:
    with database.read_session() as session:
        return {row.event_id: row.status for row in session.scalars(select(Notification))}


def test_notifications_are_sent_to_a_real_webhook(database_url, make_settings, migrated) -> None:
    database = migrated(database_url)
    with database.session() as session:
        session.add_all([_notification("e1"), _notification("e2"), _notification("e3", channel="log")])
    with WebhookReceiver() as receiver:
        settings = make_settings(database_url=database_url, notify_webhook_url=receiver.url)
        totals = asyncio.run(deliver_pending(database=database, settings=settings))
        assert totals == {"sent": 3, "failed": 0, "dead": 0}
        assert sorted(body["event_id"] for body in receiver.received) == ["e1", "e2"]
    assert set(_statuses(database).values()) == {"sent"}
    again = asyncio.run(deliver_pending(database=database, settings=settings))
    assert again == {"sent": 0, "failed": 0, "dead": 0}  # nothing is delivered twice


def test_failed_delivery_backs_off_then_goes_dead(database_url, make_settings, migrated) -> None:
    database = migrated(database_url)
    with database.session() as session:
        session.add(_notification("e1"))
    with WebhookReceiver(status=500) as receiver:
        settings = make_settings(
            database_url=database_url,
            notify_webhook_url=receiver.url,
            notify_max_attempts=2,
            notify_backoff_base_seconds=60,
        )
        first = asyncio.run(deliver_pending(database=database, settings=settings))
        assert first == {"sent": 0, "failed": 1, "dead": 0}
        with database.read_session() as session:
            row = session.scalars(select(Notification)).one()
            assert row.attempts == 1 and "HTTP 500" in row.last_error
            assert row.next_attempt_at > utcnow() + timedelta(seconds=50)
        # Not due yet: a second pass right away does not retry.
        assert asyncio.run(deliver_pending(database=database, settings=settings))["failed"] == 0
        with database.session() as session:
            session.scalars(select(Notification)).one().next_attempt_at = utcnow()
        second = asyncio.run(deliver_pending(database=database, settings=settings))
        assert second == {"sent": 0, "failed": 0, "dead": 1}
        assert len(receiver.received) == 2
    assert _statuses(database) == {"e1": "dead"}


def test_unreachable_webhook_is_a_failure_not_a_crash(database_url, make_settings, migrated) -> None:
    database = migrated(database_url)
    with database.session() as session:
        session.add(_notification("e1"))
    receiver = WebhookReceiver().start()
    url = receiver.url
    receiver.stop()  # nothing listens there any more
    settings = make_settings(database_url=database_url, notify_webhook_url=url, notify_webhook_timeout_seconds=1)
    assert asyncio.run(deliver_pending(database=database, settings=settings))["failed"] == 1


def test_cleanup_deletes_only_expired_rows_in_batches(database_url, make_settings, migrated) -> None:
    database = migrated(database_url)
    settings = make_settings(database_url=database_url, retention_runs_days=1, retention_batch_size=7)
    old, new = utcnow() - timedelta(days=3), utcnow()
    with database.session() as session:
        for index in range(20):
            stamp = old if index < 15 else new
            session.add(
                TaskRun(
                    run_id=f"r{index}",
                    task="t",
                    trigger="schedule",
                    started_at=stamp,
                    finished_at=stamp,
                    outcome="success",
                )
            )
        session.add(_notification("old-sent", status="sent", updated_at=utcnow() - timedelta(days=30)))
        session.add(_notification("old-pending", updated_at=utcnow() - timedelta(days=30)))
    deleted = purge(database=database, settings=settings).deleted
    assert deleted["task_runs"] == 15 and deleted["notifications"] == 1
    with database.read_session() as session:
        assert session.scalar(select(func.count()).select_from(TaskRun)) == 5
        assert [n.event_id for n in session.scalars(select(Notification))] == ["old-pending"]


def test_report_aggregates_the_window(database_url, migrated) -> None:
    database = migrated(database_url)
    now = utcnow()
    with database.session() as session:
        for index, outcome in enumerate(["success", "success", "error"]):
            session.add(
                TaskRun(
                    run_id=f"r{index}",
                    task="cleanup",
                    trigger="schedule",
                    started_at=now - timedelta(minutes=1),
                    outcome=outcome,
                )
            )
        session.add(
            TaskRun(
                run_id="old", task="cleanup", trigger="schedule", started_at=now - timedelta(hours=2), outcome="success"
            )
        )
        session.add(
            Event(
                id="e1", type="order.created", occurred_at=now, received_at=now, topic="events", partition=0, offset=1
            )
        )
        session.add(_notification("e1", status="sent"))
    assert latest_report(database) is None
    build_report(database=database, window_end=now + timedelta(seconds=1), window=timedelta(minutes=15))
    report = latest_report(database)
    assert report["runs"] == {"cleanup": {"success": 2, "error": 1}}
    assert report["notifications"] == {"sent": 1}
    assert report["events"] == {"order.created": 1}
    with database.read_session() as session:
        assert session.scalar(select(func.count()).select_from(Report)) == 1
