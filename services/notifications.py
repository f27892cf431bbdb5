"""`notifications` task: delivers pending notification rows to a webhook or the log.

Rows are claimed in a short transaction (status `sending` with a lease; `FOR UPDATE SKIP
LOCKED` on PostgreSQL so concurrent runs never take the same row), delivered with no
transaction open, then marked `sent`, `failed` (with exponential backoff) or `dead`.
A crash mid-delivery leaves the lease to expire, so the row is retried: at-least-once.
"""

from __future__ import annotations

import asyncio
import socket
from datetime import datetime, timedelta

import httpx
from sqlalchemy import select

from logs import get_logger
from scheduling import TaskContext, every, tasks
from settings import Settings
from storage.db import Database
from storage.models import Notification
from support.backoff import backoff_ceiling
from support.clock import utcnow

log = get_logger(__name__)

LEASE_SECONDS = 120
MAX_BATCHES_PER_RUN = 20
MAX_BACKOFF_SECONDS = 3600
CONCURRENCY = 10


def claim_due(database: Database, *, now: datetime, limit: int) -> list[Notification]:
    """Marks up to `limit` due rows as `sending` under a lease and returns them."""
    with database.session() as session:
        query = (select(Notification)
                 .where(Notification.status.in_(("pending", "failed", "sending")),
                        Notification.next_attempt_at <= now)
                 .order_by(Notification.next_attempt_at, Notification.id)
                 .limit(limit)
                 .with_for_update(skip_locked=True))
        rows = list(session.scalars(query))
        for row in rows:
            row.status = "sending"
            row.next_attempt_at = now + timedelta(seconds=LEASE_SECONDS)
            row.updated_at = now
        return rows


async def _deliver(client: httpx.AsyncClient | None, row: Notification, settings: Settings,
                   gate: asyncio.Semaphore) -> str | None:
    """Sends one notification; returns None on success or the error text."""
    if client is None or row.channel == "log":
        log.info("notification_delivered", channel="log", notification_id=row.id,
                 event_id=row.event_id, recipient=row.recipient, payload=row.payload)
        return None
    body = {"id": row.id, "event_id": row.event_id, "recipient": row.recipient, "payload": row.payload}
    async with gate:
        try:
            response = await client.post(settings.notify_webhook_url, json=body)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
    if response.status_code >= 300:
        return f"webhook answered HTTP {response.status_code}"
    return None


def record_results(database: Database, settings: Settings, results: dict[int, str | None]) -> dict[str, int]:
    """Applies delivery results (row id -> error or None); returns counts by new status."""
    counts = {"sent": 0, "failed": 0, "dead": 0}
    now = utcnow()
    with database.session() as session:
        for row_id, error in results.items():
            row = session.get(Notification, row_id)
            if row is None or row.status != "sending":
                continue
            row.attempts += 1
            row.updated_at = now
            if error is None:
                row.status, row.sent_at, row.last_error = "sent", now, None
            elif row.attempts >= settings.notify_max_attempts:
                row.status, row.last_error = "dead", error
                log.error("notification_dead", notification_id=row.id, event_id=row.event_id,
                          attempts=row.attempts, error=error)
            else:
                delay = backoff_ceiling(row.attempts - 1, base=settings.notify_backoff_base_seconds,
                                        cap=MAX_BACKOFF_SECONDS)
                row.status, row.last_error = "failed", error
                row.next_attempt_at = now + timedelta(seconds=delay)
                log.warning("notification_failed", notification_id=row.id, event_id=row.event_id,
                            attempts=row.attempts, retry_in_seconds=delay, error=error)
            counts[row.status] += 1
    return counts


async def deliver_pending(*, database: Database, settings: Settings) -> dict[str, int]:
    """Delivers due notifications in batches until none are due; returns totals by status."""
    totals = {"sent": 0, "failed": 0, "dead": 0}
    client = None
    if settings.notify_webhook_url:
        # TCP_NODELAY: h11 writes headers and body separately, and Nagle + the receiver's
        # delayed ACK would add ~40 ms to every POST.
        transport = httpx.AsyncHTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
        client = httpx.AsyncClient(timeout=settings.notify_webhook_timeout_seconds, transport=transport)
    gate = asyncio.Semaphore(CONCURRENCY)
    try:
        for _ in range(MAX_BATCHES_PER_RUN):
            rows = claim_due(database, now=utcnow(), limit=settings.notify_batch_size)
            if not rows:
                break
            errors = await asyncio.gather(*(_deliver(client, row, settings, gate) for row in rows))
            counts = record_results(database, settings, {row.id: e for row, e in zip(rows, errors, strict=False)})
            for status, count in counts.items():
                totals[status] += count
    finally:
        if client is not None:
            await client.aclose()
    return totals


@tasks.task("notifications", trigger=every(30).seconds, timeout=120,
            description="Delivers pending notifications to the webhook (NOTIFY_WEBHOOK_URL) or the log")
async def notifications(ctx: TaskContext) -> None:
    """Task entry: one delivery pass; logs a summary when anything was attempted."""
    totals = await deliver_pending(database=ctx.database, settings=ctx.settings)
    if any(totals.values()):
        log.info("notifications_pass", run_id=ctx.run_id, **totals)


