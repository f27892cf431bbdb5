"""Benchmark 7's FastStream peer: the product's durable ingest written the way a competent FastStream
0.7 user would write it, with FastStream's public API only (dev requirement, never the library's).

- a batch subscriber (`batch=True`, up to 2000 records, the product's KAFKA_BATCH_SIZE) in a fresh
  group reading from the earliest offset, `ack_policy=AckPolicy.ACK`: FastStream commits the
  consumer's offsets after the handler returned, so after the transaction;
- per message `Envelope.model_validate_json` (pydantic, the product's envelope: id, type,
  occurred_at, data, notify); a message that fails is a dead letter (topic, partition, offset,
  reason, raw value) in the same transaction;
- one transaction per batch: a multi-row `INSERT … ON CONFLICT (id) DO NOTHING RETURNING id` of
  the events, then a notifications row for each NEW event with `notify` (a redelivered batch adds
  none), dead letters `ON CONFLICT (topic, partition, offset) DO NOTHING`: idempotent;
- backends: aiokafka (`faststream.kafka`) and confluent-kafka (`faststream.confluent`); databases:
  SQLite through `sqlite3` (WAL, synchronous=NORMAL, as the product) and PostgreSQL through
  psycopg's async connection.

Its rate is measured as the product's: events after the first batch / (end of the last batch's
transaction − end of the first's). `run_peer` returns the exact stored and dead-lettered counts,
read back from the database, so a caller can check them against what was produced.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

CLIENTS = ("aiokafka", "confluent")
BATCH = 2000


class Notify(BaseModel):
    model_config = ConfigDict(extra="ignore")
    channel: Literal["webhook", "log"]
    recipient: str = Field(min_length=1, max_length=256)


class Envelope(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str = Field(min_length=1, max_length=128)
    type: str = Field(min_length=1, max_length=128)
    occurred_at: datetime | None = None
    data: dict[str, Any] | None = None
    notify: Notify | None = None


SCHEMA = (
    "CREATE TABLE IF NOT EXISTS fs_events (id TEXT PRIMARY KEY, type TEXT NOT NULL, occurred_at {ts}, "
    "received_at {ts} NOT NULL, data {json}, topic TEXT NOT NULL, partition INTEGER NOT NULL, "
    '"offset" BIGINT NOT NULL)',
    "CREATE TABLE IF NOT EXISTS fs_notifications (id {serial}, event_id TEXT NOT NULL, "
    "channel TEXT NOT NULL, recipient TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending', "
    "created_at {ts} NOT NULL)",
    "CREATE TABLE IF NOT EXISTS fs_dead_letters (topic TEXT NOT NULL, partition INTEGER NOT NULL, "
    '"offset" BIGINT NOT NULL, reason TEXT NOT NULL, raw {blob}, created_at {ts} NOT NULL, '
    'PRIMARY KEY (topic, partition, "offset"))',
)
TYPES = {
    "sqlite": {"ts": "TEXT", "json": "TEXT", "serial": "INTEGER PRIMARY KEY", "blob": "BLOB"},
    "postgresql": {"ts": "TIMESTAMPTZ", "json": "JSONB", "serial": "BIGSERIAL PRIMARY KEY", "blob": "BYTEA"},
}


def _rows(values: list[tuple[Any, ...]], width: int, mark: str) -> str:
    row = "(" + ", ".join([mark] * width) + ")"
    return ", ".join([row] * len(values))


def _notifications(new: set[str], events: dict, created: Any) -> list[tuple[Any, ...]]:
    """A notification row per NEW event with `notify` (a redelivered event adds none)."""
    rows = []
    for event_id in new:
        notify = events[event_id][0].notify
        if notify is not None:
            rows.append((event_id, notify.channel, notify.recipient, created))
    return rows


class Store:
    """One database, one connection; `store(good, bad)` is one transaction, returns new event ids."""

    def __init__(self, url: str) -> None:
        self.postgres = url.startswith("postgresql")
        self.url = url
        self.conn: Any = None

    async def open(self) -> None:
        kind = "postgresql" if self.postgres else "sqlite"
        if self.postgres:
            import psycopg

            self.conn = await psycopg.AsyncConnection.connect(self.url.replace("+psycopg", ""))
            async with self.conn.transaction():
                for statement in SCHEMA:
                    await self.conn.execute(statement.format(**TYPES[kind]))
        else:
            self.conn = sqlite3.connect(
                self.url.removeprefix("sqlite:///"), isolation_level=None, check_same_thread=False
            )
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL"):
                self.conn.execute(f"PRAGMA {pragma}")
            for statement in SCHEMA:
                self.conn.execute(statement.format(**TYPES[kind]))

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close() if self.postgres else self.conn.close()

    async def store(self, good: list[tuple[Envelope, str, int, int]], bad: list[tuple[str, int, int, str, bytes]]):
        now = datetime.now(UTC)
        events: dict[str, tuple[Envelope, str, int, int]] = {}
        for env, topic, partition, offset in good:
            events.setdefault(env.id, (env, topic, partition, offset))  # a batch may repeat an id
        rows = [
            (e.id, e.type, e.occurred_at or now, now, json.dumps(e.data), t, p, o) for e, t, p, o in events.values()
        ]
        if self.postgres:
            return await self._postgres(rows, events, bad, now)
        # On a thread, as aiosqlite would: aiokafka's fetcher goes on in the loop meanwhile.
        return await asyncio.to_thread(self._sqlite, rows, events, bad, now)

    async def _postgres(self, rows, events, bad, now) -> set[str]:
        # Arrays, one per column, in binary (%b: the text format escapes each element by regex),
        # through unnest(): a fixed statement of a few parameters. A VALUES list of 16,000
        # placeholders costs psycopg ~0.1 s a batch to parse, which no one who measured would ship.
        new: set[str] = set()
        async with self.conn.transaction(), self.conn.cursor() as cur:
            if rows:
                await cur.execute(
                    'INSERT INTO fs_events (id, type, occurred_at, received_at, data, topic, partition, "offset") '
                    "SELECT * FROM unnest(%b::text[], %b::text[], %b::timestamptz[], %b::timestamptz[], "
                    "%b::jsonb[], %b::text[], %b::int[], %b::bigint[]) ON CONFLICT (id) DO NOTHING RETURNING id",
                    [list(column) for column in zip(*rows, strict=True)],
                )
                new = {r[0] for r in await cur.fetchall()}
            notes = _notifications(new, events, now)
            if notes:
                await cur.execute(
                    "INSERT INTO fs_notifications (event_id, channel, recipient, created_at) "
                    "SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::timestamptz[])",
                    [list(column) for column in zip(*notes, strict=True)],
                )
            if bad:
                dead = [(*b, now) for b in bad]
                await cur.execute(
                    'INSERT INTO fs_dead_letters (topic, partition, "offset", reason, raw, created_at) '
                    "SELECT * FROM unnest(%b::text[], %b::int[], %b::bigint[], %b::text[], %b::bytea[], "
                    '%b::timestamptz[]) ON CONFLICT (topic, partition, "offset") DO NOTHING',
                    [list(column) for column in zip(*dead, strict=True)],
                )
        return new

    def _sqlite(self, rows, events, bad, now) -> set[str]:
        stamp = now.isoformat()
        conn, new = self.conn, set[str]()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for start in range(0, len(rows), 1000):  # 8 variables a row: under SQLite's 32,766
                chunk = [(*r[:2], r[2].isoformat(), stamp, *r[4:]) for r in rows[start : start + 1000]]
                cursor = conn.execute(
                    'INSERT INTO fs_events (id, type, occurred_at, received_at, data, topic, partition, "offset") '
                    f"VALUES {_rows(chunk, 8, '?')} ON CONFLICT (id) DO NOTHING RETURNING id",
                    [v for r in chunk for v in r],
                )
                new.update(r[0] for r in cursor.fetchall())
            notes = _notifications(new, events, stamp)
            if notes:
                conn.execute(
                    "INSERT INTO fs_notifications (event_id, channel, recipient, created_at) "
                    f"VALUES {_rows(notes, 4, '?')}",
                    [v for n in notes for v in n],
                )
            if bad:
                dead = [(*b, stamp) for b in bad]
                conn.execute(
                    'INSERT INTO fs_dead_letters (topic, partition, "offset", reason, raw, created_at) '
                    f'VALUES {_rows(dead, 6, "?")} ON CONFLICT (topic, partition, "offset") DO NOTHING',
                    [v for d in dead for v in d],
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return new

    async def counts(self) -> dict[str, int]:
        out = {}
        tables = {"fs_events": "stored", "fs_dead_letters": "dead_lettered", "fs_notifications": "notifications"}
        for table, key in tables.items():
            if self.postgres:
                cur = await self.conn.execute(f"SELECT count(*) FROM {table}")
                out[key] = (await cur.fetchone())[0]
            else:
                out[key] = self.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        return out


def _record(client: str, record: Any) -> tuple[bytes, str, int, int]:
    """(value, topic, partition, offset) of an aiokafka ConsumerRecord or a confluent Message."""
    if client == "aiokafka":
        return record.value or b"", record.topic, record.partition, record.offset
    return record.value() or b"", record.topic(), record.partition(), record.offset()


def _broker(client: str, bootstrap: str) -> tuple[Any, Any]:
    """(broker, KafkaMessage annotation) of the chosen FastStream backend."""
    if client == "aiokafka":
        from faststream import kafka

        return kafka.KafkaBroker(bootstrap, logger=None), kafka.KafkaMessage
    from faststream import confluent

    return confluent.KafkaBroker(bootstrap, logger=None), confluent.KafkaMessage


async def _consume(
    client, bootstrap, topic, database_url, expected, timeout, session_ms, heartbeat_ms, group_id=None
) -> dict:
    from faststream import AckPolicy

    store = Store(database_url)
    await store.open()
    broker, message_type = _broker(client, bootstrap)
    state: dict[str, Any] = {"seen": 0, "first_at": None, "first_n": 0, "last_at": None, "batches": 0}
    done = asyncio.Event()

    @broker.subscriber(
        topic,
        batch=True,
        max_records=BATCH,
        group_id=group_id or f"bench-fs-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        session_timeout_ms=session_ms,
        heartbeat_interval_ms=heartbeat_ms,
        ack_policy=AckPolicy.ACK,
    )
    async def handle(msg: message_type) -> None:  # type: ignore[valid-type]  # the backend's KafkaMessage
        good: list[tuple[Envelope, str, int, int]] = []
        bad: list[tuple[str, int, int, str, bytes]] = []
        raw = msg.raw_message  # type: ignore[attr-defined]
        records = raw if isinstance(raw, (tuple, list)) else (raw,)
        for record in records:
            value, rtopic, partition, offset = _record(client, record)
            try:
                good.append((Envelope.model_validate_json(value), rtopic, partition, offset))
            except ValidationError as exc:
                bad.append((rtopic, partition, offset, str(exc.errors()[0]["type"]), value))
        await store.store(good, bad)
        now = time.monotonic()
        state["seen"] += len(records)
        state["batches"] += 1
        if state["first_at"] is None:
            state["first_at"], state["first_n"] = now, len(records)
        state["last_at"] = now
        if state["seen"] >= expected:
            done.set()

    started = time.monotonic()
    await broker.start()
    try:
        await asyncio.wait_for(done.wait(), timeout)
    except TimeoutError:
        pass
    finally:
        await broker.stop()
    counts = await store.counts()
    await store.close()
    return {**state, **counts, "started": started}


def run_peer(
    client: str,
    bootstrap: str,
    topic: str,
    database_url: str,
    expected: int,
    *,
    timeout: float = 120.0,
    session_ms: int = 6000,
    heartbeat_ms: int = 1000,
    group_id: str | None = None,
) -> dict:
    """One peer run (its own event loop): events/s after the first batch and exact counts
    (a fresh consumer group unless `group_id` is given)."""
    run = asyncio.run(
        _consume(client, bootstrap, topic, database_url, expected, timeout, session_ms, heartbeat_ms, group_id)
    )
    seconds = (run["last_at"] - run["first_at"]) if run["first_at"] is not None else 0.0
    rate = round((run["seen"] - run["first_n"]) / seconds) if seconds > 0 else None
    return {
        "events": run["seen"],
        "stored": run["stored"],
        "dead_lettered": run["dead_lettered"],
        "notifications": run["notifications"],
        "events_per_s": rate,
        "seconds": round(seconds, 3),
        "batches": run["batches"],
        "join_s": None if run["first_at"] is None else round(run["first_at"] - run["started"], 2),
    }


if __name__ == "__main__":  # the kill -9 check's victim: python -m ... CLIENT BOOTSTRAP TOPIC URL COUNT GROUP
    import sys

    client_, bootstrap_, topic_, url_, count_, group_ = sys.argv[1:7]
    run_peer(
        client_, bootstrap_, topic_, url_, int(count_), timeout=600, session_ms=2000, heartbeat_ms=500, group_id=group_
    )
