"""The batch store on a real database: idempotent on the event id, handlers' rows included."""

from __future__ import annotations

import json
from types import SimpleNamespace

from sqlalchemy import func, select

from servicescheduler.consumers.decoding.events import decode
from servicescheduler.consumers.storing.handlers import HandlerRegistry, MessageMeta
from servicescheduler.consumers.storing.store import Prepared, store_batch
from servicescheduler.storage.models import AuditEntry, Event, Notification
from servicescheduler.support.clock import utcnow


def _prepared(event_id: str, offset: int, **extra) -> Prepared:
    tail = extra.get("tail", "")
    value = f'{{"id": "{event_id}", "type": "order.created", "data": {{"n": {offset}}}{tail}}}'.encode()
    record = SimpleNamespace(value=value, key=None, timestamp=1_800_000_000_000)
    meta = MessageMeta("events", 0, offset, None, utcnow())
    return Prepared(decode(record), meta, None, value)


def _count(database, model) -> int:
    with database.read_session() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_replays_add_no_rows_not_even_handler_rows(database_url, migrated) -> None:
    database = migrated(database_url)
    registry = HandlerRegistry()

    @registry.register("order.created")
    def audit(batch, event, meta) -> None:
        batch.add(AuditEntry(at=utcnow(), actor="consumer", action="order", target=event.id))

    notify = ', "notify": {"channel": "log", "recipient": "ops"}'
    first = [_prepared("a", 0, tail=notify), _prepared("b", 1), _prepared("a", 2, tail=notify)]
    result = store_batch(database, prepared=first, dead=[], registry=registry, max_attempts=3, value_cap=100)
    assert (result.events_stored, result.duplicates, result.notifications_created) == (2, 1, 1)
    replay = [_prepared("a", 0, tail=notify), _prepared("b", 1), _prepared("c", 3)]
    again = store_batch(database, prepared=replay, dead=[], registry=registry, max_attempts=3, value_cap=100)
    assert (again.events_stored, again.duplicates, again.notifications_created) == (1, 2, 0)
    assert _count(database, Event) == 3
    assert _count(database, Notification) == 1
    with database.read_session() as session:
        targets = sorted(session.scalars(select(AuditEntry.target)))
    assert targets == ["a", "b", "c"]  # one handler row per event, whatever the deliveries


def test_bulk_path_writes_what_the_orm_reads_back(database_url, migrated) -> None:
    from datetime import UTC, datetime

    database = migrated(database_url)
    data = {"big": 10**30, "f": 0.1, "text": "é\u2028\x00", "nested": [{"a": None}, [], {}], "t": True}
    value = json.dumps(
        {"id": "rt", "type": "order.created", "occurred_at": "0001-01-01T00:00:00.000001Z", "data": data}
    ).encode()
    record = SimpleNamespace(value=value, key=b"k-1", timestamp=1_800_000_000_000)
    received = datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    item = Prepared(decode(record), MessageMeta("events", 2, 2**40, "k-1", received), b"k-1", value)
    plain = _prepared("nodata", 1)
    store_batch(database, prepared=[item, plain], dead=[], registry=HandlerRegistry(), max_attempts=1, value_cap=100)
    with database.read_session() as session:
        row = session.get(Event, "rt")
        empty = session.get(Event, "nodata")
        newer = session.scalar(select(func.count()).select_from(Event).where(Event.received_at > received))
    assert row.occurred_at == datetime(1, 1, 1, 0, 0, 0, 1, tzinfo=UTC)
    assert (row.received_at, row.data, row.key, row.partition, row.offset) == (received, data, "k-1", 2, 2**40)
    assert empty.data == {"n": 1}
    assert newer == 1  # timestamps compare in SQL as the ORM's own do (the other row is received now)


def test_sqlite_batches_commit_with_synchronous_full(tmp_path, migrated) -> None:
    database = migrated(f"sqlite:///{tmp_path / 'sync.db'}")
    registry = HandlerRegistry()
    seen = []

    @registry.register("order.created")
    def probe(batch, event, meta) -> None:
        seen.append(batch.session.connection().exec_driver_sql("PRAGMA synchronous").scalar())

    store_batch(database, prepared=[_prepared("s", 0)], dead=[], registry=registry, max_attempts=1, value_cap=100)
    assert seen == [2]  # FULL: an event whose offset is committed survives power loss
    with database.engine.connect() as connection:  # the pooled connection went back as it came
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1


def test_bulk_insert_of_any_size_returns_exactly_the_new_ids_through_few_statements(database_url, migrated) -> None:
    from servicescheduler.storage import events as bulk

    database = migrated(database_url)
    now = utcnow()
    known: list[str] = []  # ids stored so far
    for size in (1, 3, 1023, 1024, 1025, 2049):  # SQLite pads each INSERT to a power of two rows
        repeated = known[: size // 3]  # known ids are skipped, and never padded in
        fresh = [f"s{len(known) + i}" for i in range(size - len(repeated))]
        rows = [(i, "order.created", now, now, {"n": n}, None, "events", 0, n) for n, i in enumerate(repeated + fresh)]
        with database.session() as session:
            assert bulk.insert_new_events(session.connection(), rows) == set(fresh), size
        known += fresh
    with database.read_session() as session:
        assert sorted(session.scalars(select(Event.id))) == sorted(known)
    if database_url.startswith("sqlite"):  # one statement text per power of two: a bounded cache
        assert bulk._sqlite_insert.cache_info().currsize <= 11
