"""Bulk insert of a batch's event rows, returning which ids were new, on the driver directly.

The ORM/Core layers cost more than the database on this path (compiling, binding 9 columns per
row, RETURNING through insertmanyvalues): here each dialect gets its fastest idempotent form.

- PostgreSQL: COPY the batch into a per-session temporary staging table, then ONE
  `INSERT … SELECT … ON CONFLICT (id) DO NOTHING RETURNING id`.
- SQLite: ONE `SELECT id … WHERE id IN (…)` for the batch, then a prepared `INSERT` executemany
  of the rest (the transaction holds SQLite's write lock: nobody inserts in between).

Both run inside the caller's transaction (with the notifications, handler rows and dead letters
of the batch). Rows must be unique by id. Values are written exactly as SQLAlchemy's types
would write them (UTC timestamps; SQLite's `YYYY-MM-DD HH:MM:SS.ffffff` text; JSON text).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

COLUMNS = ("id", "type", "occurred_at", "received_at", "data", "key", "topic", "partition", "offset")
_QUOTED = ", ".join(f'"{c}"' for c in COLUMNS)
_SQLITE_INSERT = f"INSERT INTO events ({_QUOTED}) VALUES ({', '.join('?' * len(COLUMNS))})"
_SQLITE_IN_CHUNK = 500  # bound variables per SELECT; old SQLite builds allow at most 999
_STAGE = "consumer_events_stage"
_PG_STAGE = (
    f"SET LOCAL client_min_messages TO warning; CREATE TEMP TABLE IF NOT EXISTS {_STAGE} "
    "(LIKE events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
)
_PG_COPY = f"COPY {_STAGE} ({_QUOTED}) FROM STDIN"
_PG_MOVE = f"INSERT INTO events ({_QUOTED}) SELECT {_QUOTED} FROM {_STAGE} ON CONFLICT (id) DO NOTHING RETURNING id"
_json = msgspec.json.Encoder()
_encode = _json.encode  # bound once: the row loops below call it per event (see json_text)


def event_row(row: dict[str, Any]) -> tuple[Any, ...]:
    """A handler's `events` row (dict, see BatchWriter.add_event) as a tuple in COLUMNS order."""
    return tuple(row[c] for c in COLUMNS)


def insert_new_events(connection: Any, rows: list[tuple[Any, ...]]) -> set[str]:
    """Inserts the rows (tuples in COLUMNS order) whose id is not stored yet (SQLAlchemy
    `connection`, in a transaction); returns the ids inserted."""
    if not rows:
        return set()
    driver = connection.connection.driver_connection
    if connection.dialect.name == "postgresql":
        return _postgres(driver, rows)
    return _sqlite(driver, rows)


def json_text(value: Any) -> str:
    """The JSON text SQLAlchemy's JSON type would store (None is JSON `null`, as its default)."""
    return _json.encode(value).decode()


def _postgres(driver: Any, rows: list[tuple[Any, ...]]) -> set[str]:
    with driver.cursor() as cursor:
        cursor.execute(_PG_STAGE)
        with cursor.copy(_PG_COPY) as copy:
            for r in rows:
                copy.write_row((r[0], r[1], r[2], r[3], _encode(r[4]).decode(), r[5], r[6], r[7], r[8]))
        cursor.execute(_PG_MOVE)
        return {row[0] for row in cursor.fetchall()}


def _sqlite(driver: Any, rows: list[tuple[Any, ...]]) -> set[str]:
    # received_at is one value per batch and producers repeat occurred_at: each distinct time is
    # formatted once, then looked up (a call per value was 10 % of the consumer's time).
    times = {value: sqlite_time(value) for value in {r[2] for r in rows} | {r[3] for r in rows}}
    cursor = driver.cursor()
    try:
        ids = [r[0] for r in rows]
        stored: set[str] = set()
        for start in range(0, len(ids), _SQLITE_IN_CHUNK):
            chunk = ids[start : start + _SQLITE_IN_CHUNK]
            query = f"SELECT id FROM events WHERE id IN ({','.join('?' * len(chunk))})"
            stored.update(row[0] for row in cursor.execute(query, chunk))
        new = [r for r in rows if r[0] not in stored] if stored else rows
        cursor.executemany(
            _SQLITE_INSERT,
            [(r[0], r[1], times[r[2]], times[r[3]], _encode(r[4]).decode(), r[5], r[6], r[7], r[8]) for r in new],
        )
    finally:
        cursor.close()
    return {r[0] for r in new}


def sqlite_time(value: datetime) -> str:
    """A timezone-aware datetime as SQLAlchemy stores it in SQLite (UTC, no zone, 4-digit year)."""
    if value.tzinfo is not UTC:  # decoded events and received_at already are (Event._utc, utcnow)
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:-6]  # without "+00:00", as SQLAlchemy writes it
