"""Notifications at the edges, against a real webhook receiver on 127.0.0.1 (SQLite and
PostgreSQL): idempotency keys, no URL, a run cancelled mid-batch, a process killed mid-POST."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select, update

from devtools.webhook import WebhookReceiver
from servicescheduler.builtin.notifications import deliver_pending, notifications
from servicescheduler.scheduling.registry import TaskRegistry
from servicescheduler.scheduling.triggers import every
from servicescheduler.storage.models import Notification
from servicescheduler.support.clock import utcnow
from tests.test_services import _notification

REPO_ROOT = Path(__file__).resolve().parents[1]


def _rows(database) -> dict[str, Notification]:
    with database.read_session() as session:
        return {row.event_id: row for row in session.scalars(select(Notification))}


def test_each_post_carries_the_notification_id_as_idempotency_key(database_url, make_settings, migrated) -> None:
    database = migrated(database_url)
    with database.session() as session:
        session.add_all([_notification("e1"), _notification("e2")])
    with WebhookReceiver() as receiver:
        settings = make_settings(database_url=database_url, notify_webhook_url=receiver.url)
        assert asyncio.run(deliver_pending(database=database, settings=settings))["sent"] == 2
        keys = {
            body["event_id"]: headers.get("idempotency-key")
            for body, headers in zip(receiver.received, receiver.headers, strict=True)
        }
    rows = _rows(database)
    assert keys == {"e1": str(rows["e1"].id), "e2": str(rows["e2"].id)}


def test_a_webhook_row_without_a_configured_url_fails_with_that_reason(database_url, make_settings, migrated) -> None:
    database = migrated(database_url)
    with database.session() as session:
        session.add_all([_notification("hook"), _notification("log", channel="log")])
    settings = make_settings(database_url=database_url, notify_webhook_url=None)
    totals = asyncio.run(deliver_pending(database=database, settings=settings))
    assert totals == {"sent": 1, "failed": 1, "dead": 0}
    rows = _rows(database)
    assert rows["log"].status == "sent"
    assert rows["hook"].status == "failed" and "NOTIFY_WEBHOOK_URL" in (rows["hook"].last_error or "")


def test_a_run_cancelled_by_its_timeout_leaves_no_row_sending(database_url, make_scheduler) -> None:
    """The task's timeout cancels the run while one POST hangs: the rows already delivered are
    recorded `sent`, the interrupted one `failed` (retried later), none stays `sending`."""
    with WebhookReceiver(delays={"slow": 30}) as receiver:
        registry = TaskRegistry()
        registry.register("notifications", notifications, trigger=every(1).hours, timeout=1.5, enabled=False)
        scheduler = make_scheduler(
            registry, database_url=database_url, notify_webhook_url=receiver.url, notify_webhook_timeout_seconds=20
        )
        with scheduler.database.session() as session:
            session.add_all([_notification("fast-1"), _notification("slow"), _notification("fast-2")])
        scheduler.trigger("notifications")
        assert scheduler.wait_idle(15)
        assert scheduler.status("notifications").last_run.outcome == "timeout"
        assert len(receiver.received) == 3
    rows = _rows(scheduler.database)
    assert {name: row.status for name, row in rows.items()} == {"fast-1": "sent", "fast-2": "sent", "slow": "failed"}
    assert "interrupted" in (rows["slow"].last_error or "") and rows["slow"].attempts == 1


def _deliver_fast_and(
    slow: str, receiver: WebhookReceiver, database, database_url, make_settings
) -> tuple[dict, float]:
    """Rows `fast` and `slow`, one delivery pass with a 1 s webhook timeout: (totals, seconds)."""
    with database.session() as session:
        session.add_all([_notification("fast"), _notification(slow)])
    with receiver:
        settings = make_settings(
            database_url=database_url, notify_webhook_url=receiver.url, notify_webhook_timeout_seconds=1
        )
        started = time.monotonic()
        totals = asyncio.run(deliver_pending(database=database, settings=settings))
        return totals, time.monotonic() - started


def test_a_hanging_receiver_costs_one_row_its_timeout_not_the_batch(database_url, make_settings, migrated) -> None:
    database = migrated(database_url)
    receiver = WebhookReceiver(delays={"hang": 30})
    totals, elapsed = _deliver_fast_and("hang", receiver, database, database_url, make_settings)
    assert totals == {"sent": 1, "failed": 1, "dead": 0} and elapsed < 10
    rows = _rows(database)
    assert rows["fast"].status == "sent" and rows["hang"].status == "failed"


@pytest.mark.slow  # 2.8 s by design: the answer trickles past a 2 s row timeout
def test_a_trickling_answer_is_cut_at_the_row_timeout(database_url, make_settings, migrated) -> None:
    """Every read is within the client's 1 s timeout, but the answer takes 20 × 0.5 s: the row's
    own timeout (1 s + 1 s margin) ends it, the row fails and the pass ends in time."""
    database = migrated(database_url)
    receiver = WebhookReceiver(trickle={"trickle": 0.5})
    totals, elapsed = _deliver_fast_and("trickle", receiver, database, database_url, make_settings)
    assert totals == {"sent": 1, "failed": 1, "dead": 0} and elapsed < 6
    row = _rows(database)["trickle"]
    assert row.status == "failed" and "did not answer within 2 s" in (row.last_error or "")


def _deliver_in_a_process(database_url: str, webhook_url: str) -> subprocess.Popen:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DATABASE_URL": database_url,
        "NOTIFY_WEBHOOK_URL": webhook_url,
        "NOTIFY_MAX_ATTEMPTS": "3",
        "KAFKA_ENABLED": "false",
        "LOG_FORMAT": "json",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "tests.infra.deliver_once"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.slow  # 4.7 s: six delivering processes, each started and killed
def test_a_payload_that_kills_the_process_is_not_retried_forever(database_url, migrated) -> None:
    """Every POST of the poison notification kills the delivering process (SIGKILL, as an OOM
    would). Each attempt is counted before its POST, so after NOTIFY_MAX_ATTEMPTS the row is
    `dead` instead of being retried after every lease."""
    database = migrated(database_url)
    with database.session() as session:
        session.add(_notification("poison"))
    current: dict[str, subprocess.Popen] = {}
    lock = threading.Lock()

    def kill_sender(body: dict) -> None:
        with lock:
            os.kill(current["process"].pid, signal.SIGKILL)

    with WebhookReceiver(on_request=kill_sender) as receiver:
        for _ in range(6):  # twice the attempts allowed
            with lock:
                current["process"] = _deliver_in_a_process(database_url, receiver.url)
            current["process"].wait(timeout=60)
            with database.session() as session:  # the lease has passed
                session.execute(
                    update(Notification).where(Notification.status == "sending").values(next_attempt_at=utcnow())
                )
        posts = len(receiver.received)
        keys = {headers.get("idempotency-key") for headers in receiver.headers}
    row = _rows(database)["poison"]
    assert posts == 3
    assert row.status == "dead" and row.attempts == 3 and "never reported back" in (row.last_error or "")
    assert keys == {str(row.id)}  # every repeat carried the same key: the receiver can drop them
