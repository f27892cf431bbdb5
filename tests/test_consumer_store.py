"""The batch store on a real database: idempotent on the event id, handlers' rows included."""

from __future__ import annotations

from types import SimpleNamespace

from sqlalchemy import func, select

from consumers.events import decode
from consumers.handlers import HandlerRegistry, MessageMeta
from consumers.store import Prepared, store_batch
from storage.models import AuditEntry, Event, Notification
from support.clock import utcnow


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
