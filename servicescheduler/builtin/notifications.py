"""`notifications` task: delivers pending notification rows to a webhook or the log.

Rows are claimed in a short transaction (status `sending` with a lease, the attempt counted;
`FOR UPDATE SKIP LOCKED` on PostgreSQL so concurrent runs never take the same row), delivered
with no transaction open, each within its own timeout, then marked `sent`, `failed` (with
exponential backoff) or `dead`. A run cancelled mid-batch still records every row; a crash
mid-delivery leaves the lease to expire, so the row is retried: at-least-once, each POST
carrying `Idempotency-Key: <notification id>` so the receiver can drop repeats. A webhook row
with no NOTIFY_WEBHOOK_URL configured fails with that reason.
"""

from __future__ import annotations

import asyncio
import math
import socket
import time
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select

from servicescheduler import tracing
from servicescheduler.builtin.registry import builtin_tasks
from servicescheduler.logs import get_logger
from servicescheduler.scheduling import TaskContext, every
from servicescheduler.settings import Settings
from servicescheduler.storage.db import Database
from servicescheduler.storage.models import Notification
from servicescheduler.support.backoff import backoff_ceiling
from servicescheduler.support.clock import utcnow

log = get_logger(__name__)

TASK_TIMEOUT_SECONDS = 120
# A run stops claiming once a further batch might not end within this budget, so every batch
# ends, and is recorded, before the task's timeout; a cancelled run still records (finally).
RUN_BUDGET_SECONDS = 90
LEASE_MARGIN_SECONDS = 30
ROW_TIMEOUT_MARGIN_SECONDS = 1.0
MAX_BATCHES_PER_RUN = 20
MAX_BACKOFF_SECONDS = 3600
CONCURRENCY = 10
NO_URL = "NOTIFY_WEBHOOK_URL is not set: webhook notifications cannot be delivered"
INTERRUPTED = "delivery interrupted: the run was cancelled (task timeout or shutdown) before the webhook answered"


def row_timeout(settings: Settings) -> float:
    """The longest one delivery may take, connection to answer (httpx's timeout is per phase)."""
    return settings.notify_webhook_timeout_seconds + ROW_TIMEOUT_MARGIN_SECONDS


def batch_seconds(rows: int, settings: Settings) -> float:
    """The longest a batch of `rows` takes: CONCURRENCY rows at a time, each bounded."""
    return math.ceil(rows / CONCURRENCY) * row_timeout(settings)


def batch_limit(settings: Settings, remaining_seconds: float) -> int:
    """How many rows to claim so that their batch ends within `remaining_seconds`."""
    waves = int(remaining_seconds // row_timeout(settings))
    return max(0, min(settings.notify_batch_size, waves * CONCURRENCY))


def claim_due(database: Database, settings: Settings, *, now: datetime, limit: int) -> tuple[list[Notification], int]:
    """Marks up to `limit` due rows as `sending` under a lease, counting the attempt now (before
    the POST: a process that dies mid-POST still used it up). Rows whose attempts are used up
    (earlier deliveries never reported back) become `dead`. Returns (claimed rows, dead count)."""
    lease = timedelta(seconds=batch_seconds(limit, settings) + LEASE_MARGIN_SECONDS)
    with database.session() as session:
        query = (
            select(Notification)
            .where(Notification.status.in_(("pending", "failed", "sending")), Notification.next_attempt_at <= now)
            .order_by(Notification.next_attempt_at, Notification.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        claimed, dead = [], 0
        for row in session.scalars(query):
            row.updated_at = now
            if row.attempts >= settings.notify_max_attempts:
                row.status = "dead"
                row.last_error = (
                    f"gave up after {row.attempts} attempts: the last delivery never reported "
                    "back (the process died during it?)"
                )
                log.error(
                    "notification_dead",
                    notification_id=row.id,
                    event_id=row.event_id,
                    attempts=row.attempts,
                    error=row.last_error,
                )
                dead += 1
                continue
            row.attempts += 1
            row.status, row.next_attempt_at = "sending", now + lease
            claimed.append(row)
        return claimed, dead


async def _deliver(
    client: httpx.AsyncClient | None, row: Notification, settings: Settings, gate: asyncio.Semaphore
) -> str | None:
    """Sends one notification; returns None on success or the error text."""
    if row.channel == "log":
        log.info(
            "notification_delivered",
            channel="log",
            notification_id=row.id,
            event_id=row.event_id,
            recipient=row.recipient,
            payload=row.payload,
        )
        return None
    if client is None or not settings.notify_webhook_url:
        return NO_URL
    body = {"id": row.id, "event_id": row.event_id, "recipient": row.recipient, "payload": row.payload}
    # The receiver drops repeats by this key: delivery is at-least-once (leases, retries).
    headers = {"Idempotency-Key": str(row.id)}
    async with gate:
        # `traceparent` continues the trace of the message that created the row (tracing.py).
        with tracing.delivery(row.trace_parent, row.id, settings.notify_webhook_url) as trace_headers:
            error = await _post(client, settings, body, {**headers, **trace_headers})
            if error is not None:
                tracing.delivery_failed(error)
    return error


async def _post(
    client: httpx.AsyncClient, settings: Settings, body: dict[str, Any], headers: dict[str, str]
) -> str | None:
    """One POST within the row's timeout; None on a 2xx answer, else the error text."""
    url = settings.notify_webhook_url or ""
    try:
        async with asyncio.timeout(row_timeout(settings)):
            response = await client.post(url, json=body, headers=headers)
    except TimeoutError:
        return f"webhook did not answer within {row_timeout(settings):g} s"
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
            row.updated_at = now
            if error is None:
                row.status, row.sent_at, row.last_error = "sent", now, None
            elif row.attempts >= settings.notify_max_attempts:
                row.status, row.last_error = "dead", error
                log.error(
                    "notification_dead",
                    notification_id=row.id,
                    event_id=row.event_id,
                    attempts=row.attempts,
                    error=error,
                )
            else:
                delay = backoff_ceiling(
                    row.attempts - 1, base=settings.notify_backoff_base_seconds, cap=MAX_BACKOFF_SECONDS
                )
                row.status, row.last_error = "failed", error
                row.next_attempt_at = now + timedelta(seconds=delay)
                log.warning(
                    "notification_failed",
                    notification_id=row.id,
                    event_id=row.event_id,
                    attempts=row.attempts,
                    retry_in_seconds=delay,
                    error=error,
                )
            counts[row.status] += 1
    return counts


async def _deliver_batch(
    client: httpx.AsyncClient | None,
    rows: list[Notification],
    database: Database,
    settings: Settings,
    gate: asyncio.Semaphore,
) -> dict[str, int]:
    """Delivers `rows` concurrently and records every result, even when the run is cancelled
    mid-batch: delivered rows become `sent`, unanswered ones `failed` (retried later)."""
    results: dict[int, str | None] = {}

    async def deliver_one(row: Notification) -> None:
        results[row.id] = await _deliver(client, row, settings, gate)

    try:
        await asyncio.gather(*(deliver_one(row) for row in rows))
    finally:
        unanswered = {row.id: INTERRUPTED for row in rows if row.id not in results}
        counts = record_results(database, settings, {**results, **unanswered})
    return counts


async def deliver_pending(
    *, database: Database, settings: Settings, budget_seconds: float = RUN_BUDGET_SECONDS
) -> dict[str, int]:
    """Delivers due notifications in batches until none are due or the budget is spent; returns
    totals by status."""
    totals = {"sent": 0, "failed": 0, "dead": 0}
    deadline = time.monotonic() + budget_seconds
    client = None
    if settings.notify_webhook_url:
        # TCP_NODELAY: h11 writes headers and body separately, and Nagle + the receiver's
        # delayed ACK would add ~40 ms to every POST.
        transport = httpx.AsyncHTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
        client = httpx.AsyncClient(timeout=settings.notify_webhook_timeout_seconds, transport=transport)
    gate = asyncio.Semaphore(CONCURRENCY)
    try:
        for _ in range(MAX_BATCHES_PER_RUN):
            limit = batch_limit(settings, deadline - time.monotonic())
            if limit == 0:
                break
            rows, dead = claim_due(database, settings, now=utcnow(), limit=limit)
            totals["dead"] += dead
            if not rows and not dead:
                break
            counts = await _deliver_batch(client, rows, database, settings, gate)
            for status, count in counts.items():
                totals[status] += count
    finally:
        if client is not None:
            await client.aclose()
    return totals


@builtin_tasks.task(
    "notifications",
    trigger=every(30).seconds,
    timeout=TASK_TIMEOUT_SECONDS,
    description="Delivers pending notifications to the webhook (NOTIFY_WEBHOOK_URL) or the log",
)
async def notifications(ctx: TaskContext) -> None:
    """Task entry: one delivery pass; logs a summary when anything was attempted."""
    totals = await deliver_pending(database=ctx.database, settings=ctx.settings)
    if any(totals.values()):
        log.info("notifications_pass", run_id=ctx.run_id, **totals)
