"""Stores one consumed batch in ONE transaction, idempotently; isolates messages the database refuses.

Events are inserted with INSERT ... ON CONFLICT (id) DO NOTHING (PostgreSQL and SQLite dialect
inserts), so a replayed message never adds a second row; dead letters are idempotent on
(topic, partition, offset); notifications on event_id, and are only created for NEW events.

When the database refuses the batch for a reason carried by a message (DataError, IntegrityError,
a value its driver cannot bind), the batch is bisected: halves are stored in their own
transactions until the culprit is alone, and it becomes a dead letter (kind `store`). Transient
failures (locked, unreachable) and failures of the system itself (missing table) propagate.
"""

from __future__ import annotations

import operator
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import msgspec
from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from servicescheduler.consumers.decoding.contracts import TopicContract
from servicescheduler.consumers.decoding.deadletter import DeadRow, dead_letter_rows
from servicescheduler.consumers.decoding.events import HANDLER, STORE, Event
from servicescheduler.consumers.decoding.wire import PlainEvent
from servicescheduler.consumers.storing.handlers import BatchWriter, HandlerRegistry, MessageMeta
from servicescheduler.consumers.storing.watchdog import HandlerWatch
from servicescheduler.logs import get_logger
from servicescheduler.storage.db import Database
from servicescheduler.storage.db_errors import is_db_error, is_message_error, is_transient_db_error
from servicescheduler.storage.events import event_row, insert_ignoring, insert_new_events
from servicescheduler.storage.models import DeadLetter, Notification

log = get_logger(__name__)

__all__ = ["DeadRow", "Prepared", "StoreResult", "is_message_error", "is_transient_db_error", "store_batch"]


class Prepared(msgspec.Struct, gc=False):
    """A decoded message waiting for its handler (a Struct: built in C, once per message;
    untracked by the cyclic collector, see decoding/wire.py's _Wire: nothing it holds holds it)."""

    event: Event | PlainEvent  # PlainEvent: validated on the fast path (consumers/wire.py)
    meta: MessageMeta
    raw_key: bytes | None
    raw_value: bytes | None
    contract: TopicContract | None = None  # a declared topic's (decoding/contracts.py)
    payload: Any = None  # what the contract's handler receives


@dataclass
class StoreResult:
    """What one batch changed."""

    events_stored: int = 0
    duplicates: int = 0
    notifications_created: int = 0
    dead: list[DeadRow] = field(default_factory=list)
    by_topic: dict[str, tuple[int, int]] = field(default_factory=dict)  # topic -> (stored, duplicates)

    def add(self, other: StoreResult) -> None:
        """Adds the counts and dead letters of a part of the batch."""
        self.events_stored += other.events_stored
        self.duplicates += other.duplicates
        self.notifications_created += other.notifications_created
        self.dead.extend(other.dead)
        for topic, (stored, duplicates) in other.by_topic.items():
            was = self.by_topic.get(topic, (0, 0))
            self.by_topic[topic] = (was[0] + stored, was[1] + duplicates)


# Driver (PEP 249) exception classes, for errors of the bulk path, which uses the driver directly.
@dataclass(frozen=True)
class _Batch:
    """What every part of one batch is stored with."""

    database: Database
    registry: HandlerRegistry | HandlerWatch
    max_attempts: int
    value_cap: int


def store_batch(
    database: Database,
    *,
    prepared: list[Prepared],
    dead: list[DeadRow],
    registry: HandlerRegistry | HandlerWatch,
    max_attempts: int,
    value_cap: int,
) -> StoreResult:
    """Runs handlers and writes the batch in one transaction; transient DB errors propagate.

    A handler failing `max_attempts` times turns its message into a dead letter (kind `handler`);
    a message whose rows the database refuses becomes one too (kind `store`, found by bisecting).
    Returns the counts and every dead letter of the batch (decoding, handler and store failures).
    """
    batch = _Batch(database, registry, max_attempts, value_cap)
    try:
        return _store_part(batch, prepared, dead)
    except Exception as exc:
        if not is_message_error(exc):
            raise
        log.warning("consumer_batch_refused", messages=len(prepared), error=_short(exc), action="bisect")
    result = StoreResult(dead=list(dead))
    _bisect(batch, prepared, result)
    _write_dead(batch, result.dead)
    return result


def _bisect(batch: _Batch, items: list[Prepared], into: StoreResult) -> None:
    """Stores `items` in halves until each refused message is alone; dead-letters those."""
    if not items:
        return
    try:
        into.add(_store_part(batch, items, []))
        return
    except Exception as exc:
        if not is_message_error(exc):
            raise
        if len(items) > 1:
            middle = len(items) // 2
            _bisect(batch, items[:middle], into)
            _bisect(batch, items[middle:], into)
            return
        item, error = items[0], _short(exc)
    m = item.meta
    into.dead.append(DeadRow(m.topic, m.partition, m.offset, item.raw_key, item.raw_value, STORE, error))
    log.error(
        "consumer_message_refused_by_database",
        topic=m.topic,
        partition=m.partition,
        offset=m.offset,
        event_id=item.event.id[:128],
        error=error[:500],
    )


def _short(exc: BaseException) -> str:
    """`Type: first line` of an exception (SQLAlchemy appends the SQL and parameters on later lines)."""
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first[:1000]}"


def _write_dead(batch: _Batch, dead: list[DeadRow]) -> None:
    """Dead letters in their own transaction (the events of the batch are already stored)."""
    if not dead:
        return
    with _transaction(batch.database) as session:
        _insert_ignore(
            session, _table(DeadLetter), dead_letter_rows(dead, batch.value_cap), ["topic", "partition", "offset"], "id"
        )


def _store_part(batch: _Batch, prepared: list[Prepared], dead: list[DeadRow]) -> StoreResult:
    """One transaction: handlers' rows, new events, their notifications and the dead letters."""
    result = StoreResult(dead=list(dead))
    with _transaction(batch.database) as session:
        rows, notes, buffers = _handle_all(session, batch, prepared, result)
        new_ids = insert_new_events(session.connection(), _unique_rows(rows))
        result.events_stored = len(new_ids)
        result.duplicates = len(rows) - len(new_ids)
        result.by_topic = _by_topic(rows, new_ids)
        notes = [n for n in _unique_by(notes, "event_id") if n["event_id"] in new_ids]
        created = _insert_ignore(session, _table(Notification), notes, ["event_id"], "event_id")
        result.notifications_created = len(created)
        _add_handler_rows(session, buffers, new_ids)
        session.flush()  # handlers' ORM rows fail here, inside the part, not at commit
        _insert_ignore(
            session,
            _table(DeadLetter),
            dead_letter_rows(result.dead, batch.value_cap),
            ["topic", "partition", "offset"],
            "id",
        )
    return result


def _handle_all(
    session: Session, batch: _Batch, prepared: list[Prepared], result: StoreResult
) -> tuple[list[tuple[Any, ...]], list[dict[str, Any]], list[BatchWriter]]:
    """Event rows (tuples, in message order), notification rows and the handlers' buffers.

    A plain event (no handler of its own, no notify) is the common case: its row is built right
    here, without a per-message buffer (that churn showed in the profile).
    """
    rows: list[tuple[Any, ...]] = []
    notes: list[dict[str, Any]] = []
    buffers: list[BatchWriter] = []
    registry = batch.registry
    for item in prepared:
        event, m = item.event, item.meta
        contract = item.contract
        if contract is None:
            stores_only = event.notify is None and registry.stores_only(event.type)
        else:  # a declared topic: its own handler, or none (validated at declaration: then it stores)
            stores_only = contract.handler is None
        if stores_only:
            rows.append(
                (
                    event.id,
                    event.type,
                    event.occurred_at,
                    m.received_at,
                    event.data,
                    m.key,
                    m.topic,
                    m.partition,
                    m.offset,
                )
            )
            continue
        buffer = _run_handler(session, item, registry, batch.max_attempts, result)
        if buffer is not None:
            buffers.append(buffer)
            rows.extend(event_row(row) for row in buffer.events)
            notes.extend(buffer.notifications)
    return rows, notes, buffers


_TOPIC = operator.itemgetter(6)


def _by_topic(rows: list[tuple[Any, ...]], new_ids: set[str]) -> dict[str, tuple[int, int]]:
    """(stored, duplicates) per topic of the batch's event rows (a row's topic is column 6).

    A batch of one topic (the usual poll) is answered from the totals after one pass in C.
    """
    if not rows:
        return {}
    first = rows[0][6]
    topics = set(map(_TOPIC, rows))
    if len(topics) == 1:
        return {first: (len(new_ids), len(rows) - len(new_ids))}
    counts = dict.fromkeys(topics, (0, 0))
    seen: set[object] = set()
    for row in rows:
        stored, duplicates = counts[row[6]]
        new = row[0] in new_ids and row[0] not in seen
        seen.add(row[0])
        counts[row[6]] = (stored + 1, duplicates) if new else (stored, duplicates + 1)
    return counts


def _unique_rows(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """First row per event id (replays inside one batch are duplicates too)."""
    seen: dict[object, tuple[Any, ...]] = {}
    for row in rows:
        seen.setdefault(row[0], row)
    return list(seen.values()) if len(seen) < len(rows) else rows


@contextmanager
def _transaction(database: Database) -> Iterator[Session]:
    """A session in one transaction; on SQLite with synchronous=FULL for it.

    The engine runs WAL with synchronous=NORMAL, which can lose the last commits on power loss;
    the consumer commits Kafka offsets after its transaction, so its commits must be durable.
    The level can only change outside a transaction: set on the driver connection before BEGIN
    (one fsync per batch; batches are large).
    """
    with database.engine.connect() as connection:
        if connection.dialect.name != "sqlite":
            with Session(bind=connection, expire_on_commit=False) as session, session.begin():
                yield session
            return
        driver: Any = connection.connection.driver_connection
        level = driver.execute("PRAGMA synchronous").fetchone()[0]
        driver.execute("PRAGMA synchronous=FULL")
        try:
            with Session(bind=connection, expire_on_commit=False) as session, session.begin():
                yield session
        finally:
            # The pooled connection goes back as it came; a broken one must not mask the error.
            with suppress(sqlite3.Error):
                if not driver.in_transaction:
                    driver.execute(f"PRAGMA synchronous={int(level)}")


def _run_handler(
    session: Session, item: Prepared, registry: HandlerRegistry | HandlerWatch, max_attempts: int, result: StoreResult
) -> BatchWriter | None:
    """The message's buffered rows, or None after dead-lettering it; DB errors propagate."""
    error = ""
    contract = item.contract
    if contract is None:
        event = item.event if isinstance(item.event, Event) else item.event.to_event()  # handlers get an Event
    for attempt in range(1, max_attempts + 1):
        buffer = BatchWriter(session)
        try:
            if contract is None:
                registry.handle(buffer, event, item.meta)
            else:
                registry.handle_topic(buffer, contract, item.event, item.payload, item.meta)
            return buffer
        except Exception as exc:
            if is_db_error(exc):
                raise  # transient: retried; else the transaction is spoiled: bisecting isolates it
            error = f"{type(exc).__name__}: {exc}"
            log.warning(
                "consumer_handler_failed",
                event_id=item.event.id,
                event_type=item.event.type,
                topic=item.meta.topic,
                partition=item.meta.partition,
                offset=item.meta.offset,
                attempt=attempt,
                max_attempts=max_attempts,
                error=error,
            )
    m = item.meta
    result.dead.append(
        DeadRow(
            m.topic,
            m.partition,
            m.offset,
            item.raw_key,
            item.raw_value,
            HANDLER,
            f"handler failed {max_attempts} times: {error}",
        )
    )
    return None


def _add_handler_rows(session: Session, buffers: list[BatchWriter], new_ids: set[str]) -> None:
    """Adds handlers' own rows, except for replays: a message whose event was already stored
    (earlier delivery, or earlier in this batch) had its rows written with that first delivery."""
    if not any(buffer.rows for buffer in buffers):
        return  # the common case: the default handler buffers no rows of its own
    claimed: set[str] = set()
    for buffer in buffers:
        ids = {row["id"] for row in buffer.events}
        if ids and not (ids & new_ids) - claimed:
            continue
        claimed |= ids
        session.add_all(buffer.rows)


def _unique_by(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """First row per key value (replays inside one batch are duplicates too)."""
    seen: dict[object, dict[str, Any]] = {}
    for row in rows:
        seen.setdefault(row[key], row)
    return list(seen.values())


def _table(model: type[Any]) -> Table:
    """The model's Table (mypy types `__table__` as a FromClause)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


def _insert_ignore(
    session: Session, table: Table, rows: list[dict[str, Any]], conflict: list[str], returning: str
) -> set[Any]:
    """INSERT ... ON CONFLICT DO NOTHING for all rows; returns the `returning` values of new rows.

    Executed as one executemany: SQLAlchemy compiles the statement once (cached) and batches the
    rows itself ("insertmanyvalues"). Building a multi-VALUES statement per chunk instead meant
    compiling thousands of bind parameters per batch: 60 % of the consumer's time.
    """
    if not rows:
        return set()
    bulk = insert_ignoring(session.connection(), table, rows, tuple(conflict), returning)
    if bulk is not None:  # PostgreSQL: one statement of arrays (storage/events.py)
        return bulk
    dialect_insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = dialect_insert(table).on_conflict_do_nothing(index_elements=conflict).returning(table.c[returning])
    return set(session.scalars(statement, rows))
