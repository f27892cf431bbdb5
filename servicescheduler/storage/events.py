"""Bulk insert of a batch's event rows, returning which ids were new, on the driver directly.

The ORM/Core layers cost more than the database on this path (compiling, binding 9 columns per
row, RETURNING through insertmanyvalues): here each dialect gets its fastest idempotent form.

- PostgreSQL: ONE `INSERT … SELECT FROM unnest(%b::varchar[], …) ON CONFLICT (id) DO NOTHING
  RETURNING id`, one array per column sent in binary. It replaced COPY of rows formatted in Python
  into a temporary staging table plus an INSERT … SELECT from it: 2.5× the store's rate.
- SQLite: ONE `SELECT id … WHERE id IN (json_each(?))` for the batch, then multi-row `INSERT`s
  of the rest, up to 1,024 rows each (the transaction holds SQLite's write lock: nobody inserts
  in between). A few statements per batch, not one step per row, because each step gives the GIL
  up and takes it back: beside a busy consumer thread every re-take waits up to the 5 ms switch
  interval, so `executemany` of 2000 rows could not overlap the next poll
  (consumers/storeahead.py). Statements have a power-of-two number of rows, the last row
  repeated to fill them (`ON CONFLICT (id) DO NOTHING` skips the copies): at most 11 distinct
  statements stay in each connection's cache however batch sizes vary.

Notifications and dead letters take the same road on PostgreSQL (`insert_ignoring`): one
`INSERT … SELECT FROM unnest(%b::type[], …) ON CONFLICT DO NOTHING RETURNING …` per table and
batch, the columns sent as binary arrays: SQLAlchemy's executemany with RETURNING cost ~120 µs
per notification row, a quarter of the store's time for 6 % of its rows.

Both run inside the caller's transaction (with the notifications, handler rows and dead letters
of the batch). Rows must be unique by id. Values are written exactly as SQLAlchemy's types
would write them (UTC timestamps; SQLite's `YYYY-MM-DD HH:MM:SS.ffffff` text; JSON text).
"""

from __future__ import annotations

import functools
import sqlite3
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import Table

from servicescheduler.storage.table_names import TABLE_PREFIX

EVENTS = TABLE_PREFIX + "events"  # the table of storage/models.py's Event
COLUMNS = ("id", "type", "occurred_at", "received_at", "data", "key", "topic", "partition", "offset")
_QUOTED = ", ".join(f'"{c}"' for c in COLUMNS)
_SQLITE_ROW = f"({', '.join('?' * len(COLUMNS))})"
_SQLITE_STORED = f"SELECT id FROM {EVENTS} WHERE id IN (SELECT value FROM json_each(?))"
# Rows per INSERT: a default batch (KAFKA_BATCH_SIZE=2000) in two statements. Each connection
# caches the statements it ran, ~1.8 KiB per row of the largest: 3.5 MiB for all 11 sizes.
_SQLITE_MAX_ROWS = 1024
_PG_UNNEST = (
    f"INSERT INTO {EVENTS} ({_QUOTED}) SELECT * FROM unnest(%b::varchar[], %b::varchar[], %b::timestamptz[], "
    "%b::timestamptz[], %b::json[], %b::varchar[], %b::varchar[], %b::int[], %b::bigint[]) "
    "ON CONFLICT (id) DO NOTHING RETURNING id"
)
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


def insert_ignoring(
    connection: Any, table: Table, rows: list[dict[str, Any]], conflict: tuple[str, ...], returning: str
) -> set[Any] | None:
    """PostgreSQL: inserts `rows` (dicts with the same keys) into `table` with ON CONFLICT
    (`conflict`) DO NOTHING in one statement of one array per column; returns the `returning`
    values of the rows inserted. None on another dialect (the caller keeps its own path)."""
    if connection.dialect.name != "postgresql":
        return None
    if not rows:
        return set()
    columns = tuple(rows[0])
    statement, json_columns = _pg_unnest_insert(connection.dialect, table, columns, conflict, returning)
    arrays = []
    for index, name in enumerate(columns):
        values = [row[name] for row in rows]
        arrays.append([None if v is None else _encode(v).decode() for v in values] if index in json_columns else values)
    with connection.connection.driver_connection.cursor() as cursor:
        cursor.execute(statement, arrays)
        return {row[0] for row in cursor.fetchall()}


@functools.cache
def _pg_unnest_insert(
    dialect: Any, table: Table, columns: tuple[str, ...], conflict: tuple[str, ...], returning: str
) -> tuple[str, frozenset[int]]:
    """The statement for `insert_ignoring` (cached: one per table and column set) and the
    positions of its JSON columns (sent as JSON text)."""
    types = [table.c[name].type.compile(dialect=dialect) for name in columns]
    quoted = ", ".join(f'"{name}"' for name in columns)
    arrays = ", ".join(f"%b::{kind}[]" for kind in types)
    keys = ", ".join(f'"{name}"' for name in conflict)
    sql = (
        f"INSERT INTO {table.name} ({quoted}) SELECT * FROM unnest({arrays}) "
        f'ON CONFLICT ({keys}) DO NOTHING RETURNING "{returning}"'
    )
    return sql, frozenset(i for i, kind in enumerate(types) if kind in ("JSON", "JSONB"))


def json_text(value: Any) -> str:
    """The JSON text SQLAlchemy's JSON type would store (None is JSON `null`, as its default)."""
    return _json.encode(value).decode()


def _postgres(driver: Any, rows: list[tuple[Any, ...]]) -> set[str]:
    # One array per column, sent in binary: no per-row text formatting (COPY's write_row) and no
    # staging table; the server unnests them into one INSERT.
    data = [_encode(r[4]).decode() for r in rows]
    columns = [[r[i] for r in rows] for i in range(len(COLUMNS))]
    columns[4] = data
    with driver.cursor() as cursor:
        cursor.execute(_PG_UNNEST, columns)
        return {row[0] for row in cursor.fetchall()}


def _sqlite(driver: Any, rows: list[tuple[Any, ...]]) -> set[str]:
    # received_at is one value per batch and producers repeat occurred_at: each distinct time is
    # formatted once, then looked up (a call per value was 10 % of the consumer's time).
    times = {value: sqlite_time(value) for value in {r[2] for r in rows} | {r[3] for r in rows}}
    cursor = driver.cursor()
    try:
        ids = _encode([r[0] for r in rows]).decode()
        stored = {row[0] for row in cursor.execute(_SQLITE_STORED, (ids,))}
        new = [r for r in rows if r[0] not in stored] if stored else rows
        values: list[Any] = []
        extend = values.extend
        for r in new:
            extend((r[0], r[1], times[r[2]], times[r[3]], _encode(r[4]).decode(), r[5], r[6], r[7], r[8]))
        width, most = len(COLUMNS), _rows_per_insert(driver)
        for start in range(0, len(new), most):
            size = min(most, len(new) - start)
            padded = _padded(size, most)
            chunk = values[start * width : (start + size) * width]
            cursor.execute(_sqlite_insert(padded), chunk + chunk[-width:] * (padded - size))
    finally:
        cursor.close()
    return {r[0] for r in new}


def _rows_per_insert(driver: Any) -> int:
    """Rows per INSERT: _SQLITE_MAX_ROWS, fewer if this SQLite build binds fewer variables."""
    limit = driver.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    return int(min(_SQLITE_MAX_ROWS, 1 << ((limit // len(COLUMNS)).bit_length() - 1)))


def _padded(size: int, most: int) -> int:
    """The power of two at or above `size` (at most `most`, itself one)."""
    return min(most, 1 << (size - 1).bit_length())


@functools.cache
def _sqlite_insert(rows: int) -> str:
    """INSERT of `rows` rows (a power of two: few distinct statements) skipping repeated ids."""
    return f"INSERT INTO {EVENTS} ({_QUOTED}) VALUES {', '.join([_SQLITE_ROW] * rows)} ON CONFLICT (id) DO NOTHING"


def sqlite_time(value: datetime) -> str:
    """A timezone-aware datetime as SQLAlchemy stores it in SQLite (UTC, no zone, 4-digit year)."""
    if value.tzinfo is not UTC:  # decoded events and received_at already are (Event._utc, utcnow)
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:-6]  # without "+00:00", as SQLAlchemy writes it
