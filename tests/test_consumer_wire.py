"""The decoding fast path (consumers/wire.py) against the contract (`Event`, pydantic).

Whatever the bytes, the fast path either declines (None) or returns exactly the fields the full
path returns; and `decode_event()` (fast path first) returns what `decode()` returns, or raises
the same BadMessage kind and reason. The fast path must also really be taken for ordinary events,
or the consumer silently loses its speed.
"""

from __future__ import annotations

import gc
import json
from datetime import UTC, datetime
from typing import Any, NamedTuple

import pytest
from hypothesis import HealthCheck, example, given, settings

from servicescheduler.consumers.decoding.events import BadMessage, Event, decode
from servicescheduler.consumers.decoding.wire import PlainEvent, decode_event, decode_plain
from tests.test_consumer_fuzz import HOSTILE_NUMBERS, events

STAMP_MS = 1_767_225_600_123  # 2026-01-01T00:00:00.123Z: fixed, so both paths fill the same time
DATE_FORMS = [
    "2026-01-01T00:00:00Z",
    "2026-01-01t00:00:00z",
    "2026-01-01 00:00:00Z",
    "2026-01-01T00:00:00",
    "2026-01-01T00:00:00.5+01:00",
    "2026-01-01T00:00:00.123456-23:59",
    "2026-01-01T00:00:00.1234567Z",
    "2026-01-01T00:00:00.9999995Z",
    "2026-01-01T00:00:00,5Z",
    "2026-01-01T00:00Z",
    "2026-01-01",
    "2026-01-01T24:00:00Z",
    "2026-01-01T00:00:60Z",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-23:59",
    "1767225600",
]


class Record(NamedTuple):
    value: bytes | None
    timestamp: int = STAMP_MS
    key: bytes | None = None


def _full(record: Record) -> Event | BadMessage:
    try:
        return decode(record)
    except BadMessage as exc:
        return exc


def _fields(event: Event | PlainEvent) -> tuple[Any, ...]:
    return (event.id, event.type, event.occurred_at, event.data, event.notify)


def _agree(value: bytes) -> None:
    record = Record(value)
    full = _full(record)
    fast = decode_plain(record, value)
    if fast is not None:
        assert isinstance(full, Event), f"fast path accepted what the contract refuses: {full}"
        assert _fields(fast) == _fields(full)
        assert fast.occurred_at.tzinfo is UTC
        assert fast.to_event() == full
    try:
        either = decode_event(record, max_bytes=1_048_576)
    except BadMessage as exc:
        assert isinstance(full, BadMessage)
        assert (exc.kind, exc.reason) == (full.kind, full.reason)
        return
    assert isinstance(full, Event)
    assert _fields(either) == _fields(full)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=events)
@example(payload={"id": "a", "id ": "b", "type": "t"})
@example(payload={"id": "a", "type": "t", "data": [1]})
@example(payload={"id": "a", "type": "t", "notify": None, "data": None, "occurred_at": None})
def test_generated_payloads_agree(payload: dict[str, Any]) -> None:
    _agree(json.dumps(payload).encode())


@pytest.mark.parametrize("when", DATE_FORMS)
def test_date_forms_agree(when: str) -> None:
    _agree(json.dumps({"id": "e-1", "type": "t", "occurred_at": when}).encode())


@pytest.mark.parametrize("number", HOSTILE_NUMBERS)
def test_hostile_numbers_agree(number: bytes) -> None:
    _agree(b'{"id": "e-1", "type": "t", "data": {"n": ' + number + b"}}")


@pytest.mark.parametrize(
    "value",
    [
        b'{"id": "a", "id": "b", "type": "t"}',  # duplicate keys: the last wins on both paths
        b'{"id": "a", "type": "t", "data": {"x": "\\ud800"}}',
        b'{"id": "a", "type": "t", "data": {"x": "\\ud83d\\ude00"}}',  # a valid surrogate pair
        b'{"id": "a", "type": "t", "data": ' + b'{"a": ' * 70 + b"1" + b"}" * 70 + b"}",
        b'{"id": "a", "type": "t", "data": ' + b"[" * 40 + b"]" * 40 + b"}",
        b'{"id": "a\\u0000", "type": "t"}',
        b'{"id": "' + b"x" * 129 + b'", "type": "t"}',
        b'{"id": "a", "type": 5}',
        b'["id", "a"]',
        b"\xff\xfe",
    ],
)
def test_edge_values_agree(value: bytes) -> None:
    _agree(value)


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (None, datetime.fromtimestamp(STAMP_MS / 1000, UTC)),
        ("2026-01-01T00:00:00Z", datetime(2026, 1, 1, tzinfo=UTC)),
        ("2026-01-01T01:00:00.25+01:00", datetime(2026, 1, 1, 0, 0, 0, 250_000, tzinfo=UTC)),
    ],
)
def test_ordinary_events_take_the_fast_path(when: str | None, expected: datetime) -> None:
    body: dict[str, Any] = {"id": "ord-1", "type": "order.created", "data": {"n": 1, "s": "é"}, "extra": True}
    if when is not None:
        body["occurred_at"] = when
    value = json.dumps(body).encode()
    fast = decode_plain(Record(value), value)
    assert isinstance(fast, PlainEvent)
    assert fast.occurred_at == expected
    assert fast.data == {"n": 1, "s": "é"}


def test_notify_events_use_the_full_model() -> None:
    value = json.dumps({"id": "n-1", "type": "t", "notify": {"channel": "log", "recipient": "ops"}}).encode()
    assert decode_plain(Record(value), value) is None
    event = decode_event(Record(value), max_bytes=1024)
    assert isinstance(event, Event)
    assert event.notify is not None and event.notify.recipient == "ops"


def test_a_decoded_message_adds_only_its_payload_to_what_the_cyclic_collector_tracks() -> None:
    """The per-message Structs hold no cycle: untracked, a backlog's batches in flight are not
    walked by every collection (gc=False; benchmark 7)."""
    from kafka.structs import TopicPartition

    from servicescheduler.consumers.clients.confluent import Record as ConsumedRecord
    from servicescheduler.consumers.decoding.intake import decode_batch

    value = json.dumps({"id": "gc-1", "type": "t", "occurred_at": "2026-01-01T00:00:00Z", "data": {"n": [1]}}).encode()
    record = ConsumedRecord("orders", 0, 7, STAMP_MS, b"k", value)
    prepared, dead = decode_batch({TopicPartition("orders", 0): [record]}, max_bytes=1024)
    assert dead == [] and len(prepared) == 1
    item = prepared[0]
    assert isinstance(item.event, PlainEvent)
    assert not gc.is_tracked(item) and not gc.is_tracked(item.event) and not gc.is_tracked(item.meta)
    assert gc.is_tracked(item.event.data)  # the payload (holding a list) is still collected as usual
