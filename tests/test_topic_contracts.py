"""Topic contracts without a broker: declaration checks, and records to (event, payload) or a reason.

Every user-supplied piece (decoder, model validators, key and occurred_at functions) may raise or
return the wrong thing: each case must end as BadMessage (a dead letter), never another exception.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, NamedTuple, cast

import pytest
from kafka.structs import TopicPartition
from pydantic import BaseModel, field_validator

from servicescheduler.consumers.decoding.contracts import (
    TopicContract,
    TopicDefinitionError,
    TopicRegistry,
    check_against_envelope_topics,
    subscribing,
)
from servicescheduler.consumers.decoding.events import BadMessage, Event
from servicescheduler.consumers.decoding.intake import decode_batch
from servicescheduler.consumers.decoding.topic_records import decode_record
from servicescheduler.consumers.storing.handlers import BatchWriter, HandlerRegistry, MessageMeta

STAMP_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


class Msg(NamedTuple):
    value: bytes | None
    key: bytes | None = None
    headers: list[tuple[str, bytes]] | None = None
    offset: int = 0
    timestamp: int = STAMP_MS
    topic: str = "orders"
    partition: int = 0


class Order(BaseModel):
    order_id: str
    status: str
    ts: datetime


def _order(order_id: str = "o-1", **extra: Any) -> bytes:
    return json.dumps({"order_id": order_id, "status": "paid", "ts": "2026-02-03T04:05:06+01:00", **extra}).encode()


ORDERS = TopicContract("orders", model=Order, key=lambda o: o.order_id, occurred_at=lambda o: o.ts)


def _reason(contract: TopicContract, msg: Msg) -> tuple[str, str]:
    with pytest.raises(BadMessage) as caught:
        decode_record(contract, msg, max_bytes=1_000_000)
    return caught.value.kind, caught.value.reason


def test_an_order_becomes_an_event_keyed_by_its_id_with_its_own_time() -> None:
    event, payload = decode_record(ORDERS, Msg(_order()), max_bytes=1_000_000)
    assert isinstance(payload, Order) and payload.order_id == "o-1"
    assert (event.id, event.type) == ("o-1", "orders")
    assert event.occurred_at == datetime(2026, 2, 3, 3, 5, 6, tzinfo=UTC)
    assert event.data == {"order_id": "o-1", "status": "paid", "ts": "2026-02-03T04:05:06+01:00"}


def test_defaults_id_key_topic_type_and_kafka_timestamp() -> None:
    class Thing(BaseModel):
        id: int
        name: str

    event, _ = decode_record(TopicContract("things", model=Thing), Msg(b'{"id": 7, "name": "x"}'), max_bytes=100)
    assert (event.id, event.type) == ("7", "things")
    assert event.occurred_at == datetime(2026, 1, 1, tzinfo=UTC)
    raw, _ = decode_record(TopicContract("raw", model=dict), Msg(b'{"id": "r1", "a": [1]}'), max_bytes=100)
    assert (raw.id, raw.data) == ("r1", {"id": "r1", "a": [1]})
    blob, payload = decode_record(TopicContract("blobs", model=bytes), Msg(b"\x00\xff", key=b"k1"), max_bytes=100)
    assert (blob.id, blob.data, payload) == ("k1", {"base64": "AP8="}, b"\x00\xff")


@pytest.mark.parametrize(
    ("value", "kind", "fragment"),
    [
        (_order().replace(b'"paid"', b"3"), "schema", "status"),
        (b'{"order_id": "o"}', "schema", "ts: Field required"),
        (b"not json", "schema", "Invalid JSON"),
        (b"", "empty", "no value"),
        (_order("x" * 129), "key", "129 characters"),
        (_order(""), "key", "0 characters"),
        (_order("a\u0000b"), "key", "NUL"),
    ],
)
def test_bad_orders_are_reasons(value: bytes, kind: str, fragment: str) -> None:
    got_kind, reason = _reason(ORDERS, Msg(value))
    assert got_kind == kind and fragment in reason, reason


NOT_A_TIME = cast(Any, lambda o: "x")  # a function that lies about its return type


def test_user_code_that_raises_or_lies_is_a_reason_not_a_crash() -> None:
    class Picky(BaseModel):
        id: str

        @field_validator("id")
        @classmethod
        def boom(cls, value: str) -> str:
            raise RuntimeError("validator bug")  # not a ValueError: pydantic lets it through

    cases = [
        (TopicContract("t", model=Order, key=lambda o: 1 / 0), _order(), "key", "ZeroDivisionError"),
        (TopicContract("t", model=Order, key=lambda o: 42), _order(), "key", "int, not a string"),
        (
            TopicContract("t", model=Order, key=lambda o: "k", occurred_at=cast(Any, lambda o: "x")),
            _order(),
            "schema",
            "str",
        ),
        (TopicContract("t", model=dict, decoder=lambda v, h: 1 / 0), b"{}", "decode", "ZeroDivisionError"),
        (TopicContract("t", model=dict, decoder=lambda v, h: [1]), b"{}", "schema", "list"),
        (TopicContract("t", model=bytes, decoder=lambda v, h: "s"), b"x", "schema", "wants bytes"),
        (TopicContract("t", model=dict, decoder=lambda v, h: {"id": "a", "s": "\ud800"}), b"x", "schema", "JSON"),
        (TopicContract("t", model=Picky), b'{"id": "a"}', "schema", "validator bug"),
        (TopicContract("t", model=dict), b'{"no_id": 1}', "key", "no `id`"),
        (TopicContract("t", model=bytes), b"x", "key", "no UTF-8 Kafka key"),
    ]
    for contract, value, kind, fragment in cases:
        got_kind, reason = _reason(contract, Msg(value))
        assert (got_kind, fragment in reason) == (kind, True), (contract, reason)


def test_decoder_output_is_validated_by_the_model_and_made_plain_json() -> None:
    def decode(value: bytes, headers: list[tuple[str, bytes]]) -> object:
        order_id, status = value.decode().split("|")
        return {"order_id": order_id, "status": status, "ts": datetime(2026, 1, 2, tzinfo=UTC), "h": dict(headers)}

    contract = TopicContract("t", model=Order, key=lambda o: o.order_id, decoder=decode)
    event, payload = decode_record(contract, Msg(b"o-9|new", headers=[("x", b"1")]), max_bytes=100)
    assert isinstance(payload, Order) and (event.id, payload.status) == ("o-9", "new")
    as_dict = TopicContract("t", model=dict, key=lambda d: d["order_id"], decoder=decode)
    event, _ = decode_record(as_dict, Msg(b"o-9|new", headers=[("x", b"1")]), max_bytes=100)
    assert event.data is not None and event.data["ts"] == "2026-01-02T00:00:00Z" and event.data["h"] == {"x": "MQ=="}


CE_STRUCTURED = {
    "specversion": "1.0",
    "id": "p-1",
    "source": "/payments",
    "type": "payment.captured",
    "time": "2026-03-01T10:00:00Z",
    "data": {"amount": "9.50"},
}


class Payment(BaseModel):
    amount: str


def test_cloudevents_structured_and_binary_give_the_same_event() -> None:
    contract = TopicContract("payments", model=Payment, format="cloudevents")
    structured = Msg(json.dumps(CE_STRUCTURED).encode(), headers=[("content-type", b"application/cloudevents+json")])
    binary = Msg(
        b'{"amount": "9.50"}',
        headers=[
            ("ce_specversion", b"1.0"),
            ("ce_id", b"p-1"),
            ("ce_source", b"/payments"),
            ("ce_type", b"payment.captured"),
            ("ce_time", b"2026-03-01T10:00:00Z"),
            ("content-type", b"application/json"),
        ],
    )
    no_header = Msg(json.dumps(CE_STRUCTURED).encode())  # structured, recognised by specversion
    results = [decode_record(contract, m, max_bytes=1000) for m in (structured, binary, no_header)]
    for event, payload in results:
        assert (event.id, event.type, event.data) == ("/payments:p-1", "payment.captured", {"amount": "9.50"})
        assert event.occurred_at == datetime(2026, 3, 1, 10, tzinfo=UTC)
        assert payload.source == "/payments" and payload.data == Payment(amount="9.50")


def test_cloudevents_missing_attributes_bad_data_and_long_sources() -> None:
    contract = TopicContract("payments", model=Payment, format="cloudevents")
    missing = {k: v for k, v in CE_STRUCTURED.items() if k != "source"}
    assert _reason(contract, Msg(json.dumps(missing).encode())) == (
        "schema",
        "CloudEvent attribute source: required, a non-empty string",
    )
    bad = {**CE_STRUCTURED, "data": {"amount": 3}}
    assert _reason(contract, Msg(json.dumps(bad).encode()))[0] == "schema"
    binary_no_id = Msg(b"{}", headers=[("ce_specversion", b"1.0"), ("ce_source", b"s"), ("ce_type", b"t")])
    assert "id" in _reason(contract, binary_no_id)[1]
    long = {**CE_STRUCTURED, "source": "https://example.com/" + "s" * 200}
    event, _ = decode_record(contract, Msg(json.dumps(long).encode()), max_bytes=10_000)
    assert event.id.startswith("ce:sha256:") and len(event.id) == 74
    again, _ = decode_record(contract, Msg(json.dumps(long).encode()), max_bytes=10_000)
    assert again.id == event.id  # stable: replays stay duplicates


def test_declarations_that_can_never_work_are_refused() -> None:
    registry = TopicRegistry()
    with pytest.raises(TopicDefinitionError, match="model must be a pydantic BaseModel"):
        registry.add(TopicContract("a", model=str))
    with pytest.raises(TopicDefinitionError, match="store_event=False needs a handler"):
        registry.add(TopicContract("a", store_event=False))
    with pytest.raises(TopicDefinitionError, match="format must be one of"):
        registry.add(TopicContract("a", format="avro"))  # type: ignore[arg-type]
    with pytest.raises(TopicDefinitionError, match="type must be text"):
        registry.add(TopicContract("a", type="t" * 129))
    registry.add(TopicContract("a"))
    with pytest.raises(TopicDefinitionError, match="already has a contract"):
        registry.add(TopicContract("a", model=Order))
    with pytest.raises(TopicDefinitionError, match="in KAFKA_TOPICS"):
        check_against_envelope_topics(registry, ["events", "a"])


def test_declared_topics_are_subscribed_besides_kafka_topics(make_settings) -> None:
    settings = make_settings(kafka_topics="events,audit")
    assert subscribing(settings, ["orders"]).topics == ["events", "audit", "orders"]
    assert subscribing(settings, []) is settings


def test_a_batch_mixes_envelope_and_declared_topics_and_handlers_get_the_payload() -> None:
    seen: list[Any] = []
    handler_contract = TopicContract(
        "orders", model=Order, key=lambda o: o.order_id, handler=lambda b, o, m: seen.append((o, m.offset))
    )
    records = {
        TopicPartition("events", 0): [Msg(b'{"id": "e1", "type": "x"}', topic="events")],
        TopicPartition("orders", 0): [Msg(_order("o-1"), offset=5), Msg(b"{}", offset=6)],
    }
    prepared, dead = decode_batch(records, max_bytes=1000, contracts={"orders": handler_contract})
    assert [p.event.id for p in prepared] == ["e1", "o-1"] and prepared[0].contract is None
    assert [(d.topic, d.offset, d.kind) for d in dead] == [("orders", 6, "schema")]
    buffer = BatchWriter(session=None)
    item = prepared[1]
    HandlerRegistry().handle_topic(buffer, handler_contract, item.event, item.payload, item.meta)
    assert [row["id"] for row in buffer.events] == ["o-1"] and seen == [(item.payload, 5)]


def test_an_envelope_contract_keeps_notify() -> None:
    contract = TopicContract("audit", format="envelope", handler=lambda b, e, m: None)
    value = b'{"id": "a1", "type": "t", "notify": {"channel": "log", "recipient": "ops"}}'
    event, payload = decode_record(contract, Msg(value), max_bytes=1000)
    assert isinstance(payload, Event) and payload.notify is not None
    buffer = BatchWriter(session=None)
    meta = MessageMeta("audit", 0, 0, None, datetime.now(UTC))
    HandlerRegistry().handle_topic(buffer, contract, event, payload, meta)
    assert len(buffer.events) == 1 and len(buffer.notifications) == 1


def test_contract_errors_stop_start_up_with_one_line(make_settings, tmp_path, monkeypatch) -> None:
    from servicescheduler import StartupError, topics
    from servicescheduler.embedding import ServiceScheduler

    monkeypatch.setattr(topics, "_contracts", {})  # the module-level registry, restored afterwards
    (tmp_path / "orders_module.py").write_text(
        "from servicescheduler import topics\n\n"
        "@topics.topic('orders', model=dict)\n"
        "def on_order(batch, order, meta):\n"
        "    pass\n"
    )
    (tmp_path / "broken_module.py").write_text(
        "from servicescheduler import topics\n\n@topics.topic('x', model=int)\ndef f(batch, p, meta): pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    twice = ServiceScheduler(make_settings(task_modules="orders_module", builtin_tasks=""))
    twice.topic("orders")(lambda batch, payload, meta: None)
    with pytest.raises(StartupError, match="^topic contracts: topic 'orders' already has a contract"):
        twice.check()
    with pytest.raises(StartupError, match="topic contracts: topic 'orders' already has a contract"):
        twice.start()
    assert not twice.is_running
    served = ServiceScheduler(make_settings(task_modules="orders_module", builtin_tasks=""))
    assert served.declared_topics().names() == ["orders"]  # TASK_MODULES' topics are served
    envelope_too = ServiceScheduler(make_settings(kafka_topics="events,orders", builtin_tasks=""))
    envelope_too.topic("orders", model=Order, key=lambda o: o.order_id)(lambda batch, order, meta: None)
    with pytest.raises(StartupError, match="'orders' is in KAFKA_TOPICS"):
        envelope_too.check()
    broken = ServiceScheduler(make_settings(task_modules="broken_module", builtin_tasks=""))
    with pytest.raises(StartupError, match="TopicDefinitionError: topic 'x': model must be a pydantic BaseModel"):
        broken.check()


def test_simulate_feeds_a_declared_topic_through_its_contract(tmp_path) -> None:
    from servicescheduler.embedding import ServiceScheduler
    from servicescheduler.testing import simulate

    scheduler = ServiceScheduler(database_url=f"sqlite:///{tmp_path}/app.db")
    seen: list[Order] = []

    @scheduler.topic("orders", model=Order, key=lambda o: o.order_id)
    def on_order(batch: BatchWriter, order: Order, meta: MessageMeta) -> None:
        seen.append(order)

    with simulate(scheduler) as sim:
        result = sim.feed([_order("o-1"), _order("o-1"), _order("o-2", status=3)], topic="orders")
    assert (result.stored, result.duplicates, result.dead_lettered) == (1, 1, 1)
    assert [o.order_id for o in seen] == ["o-1", "o-1"]


def test_a_value_only_the_database_refuses_is_one_dead_letter(migrated, tmp_path) -> None:
    from servicescheduler.consumers.storing.store import store_batch

    class Sneaky(BaseModel):
        id: str
        text: str

        @field_validator("text")
        @classmethod
        def lone_surrogate(cls, value: str) -> str:
            return value.replace("?", "\ud800")  # valid in Python, not in UTF-8: no column holds it

    database = migrated(f"sqlite:///{tmp_path / 'sneaky.db'}")
    contract = TopicContract("sneaky", model=Sneaky)
    values = [b'{"id": "a", "text": "ok"}', b'{"id": "b", "text": "?"}', b'{"id": "c", "text": "ok"}']
    records = {TopicPartition("sneaky", 0): [Msg(v, offset=i, topic="sneaky") for i, v in enumerate(values)]}
    prepared, dead = decode_batch(records, max_bytes=1000, contracts={"sneaky": contract})
    result = store_batch(
        database, prepared=prepared, dead=dead, registry=HandlerRegistry(), max_attempts=1, value_cap=1000
    )
    assert (result.events_stored, [(d.offset, d.kind) for d in result.dead]) == (2, [(1, "store")])
    assert result.by_topic == {"sneaky": (2, 0)}
