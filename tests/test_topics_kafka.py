"""Declared topics through a real broker (Tansu), on both databases and both Kafka clients.

An `orders` topic with a model and key (replays, invalid payloads, over-long keys and a key
function that raises mixed in), CloudEvents in structured and binary mode, a decoder hook, beside
envelope events on KAFKA_TOPICS in the same worker: exact counts stored / duplicates /
dead-lettered, per topic, and every offset committed. Plus /consumer's per-topic view over HTTP
from a host app that declares its topic on its own instance.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel
from sqlalchemy import func, select

from servicescheduler import ServiceScheduler, TopicRegistry
from servicescheduler.consumers.running.worker import ConsumerWorker
from servicescheduler.storage.models import DeadLetter, Event
from tests.conftest import wait_until
from tests.test_consumer_kafka import _committed, _events

pytestmark = pytest.mark.kafka

CLIENTS = ["kafka-python", "confluent-kafka"]


class Order(BaseModel):
    order_id: str
    status: str
    ts: datetime


class Payment(BaseModel):
    amount: str


def _order(order_id: str, status: Any = "paid") -> bytes:
    return json.dumps({"order_id": order_id, "status": status, "ts": "2026-02-03T04:05:06Z"}).encode()


def _order_key(order: Order) -> str:
    if order.order_id.startswith("boom"):
        raise RuntimeError("no key for boom orders")
    return order.order_id


def _send(producer: Any, topic: str, values: list[bytes], headers: list[tuple[str, bytes]] | None = None) -> None:
    for value in values:
        producer.client.send(topic, value=value, headers=headers or [])
    producer.client.flush(timeout=30)


def _drain(worker: ConsumerWorker, expected: int, timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    while worker.snapshot().messages_processed < expected:
        assert time.monotonic() < deadline, worker.snapshot()
        worker.poll_once()


def _rows(worker: ConsumerWorker, model: Any, topic: str) -> int:
    with worker.database.read_session() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(model.topic == topic)) or 0)


@pytest.mark.parametrize("client", CLIENTS)
def test_orders_with_a_model_and_key_exact_counts_beside_envelope_events(
    kafka, kafka_topic, kafka_group, kafka_settings, kafka_producer, open_worker, database_url, client
) -> None:
    orders = kafka.create_topic()
    seen: list[Order] = []
    registry = TopicRegistry()
    registry.topic(orders, model=Order, key=_order_key, occurred_at=lambda o: o.ts)(
        lambda batch, order, meta: seen.append(order)
    )
    good = [_order(f"o-{i}") for i in range(120)]
    bad = [_order(f"o-bad-{i}", status=i) for i in range(15)]  # status must be text
    _send(kafka_producer, orders, good + good[:40] + bad + [b"not json"] * 5 + [_order("x" * 129), _order("boom-1")])
    kafka_producer.send(kafka_topic, _events(30))  # envelope events on KAFKA_TOPICS, same worker
    worker = open_worker(kafka_settings(database_url=database_url, kafka_client=client), topics=registry)
    _drain(worker, 120 + 40 + 15 + 5 + 2 + 30)
    snap = worker.snapshot()
    assert (snap.events_stored, snap.duplicates_skipped, snap.dead_lettered) == (150, 40, 22)
    assert snap.topics == {orders: (120, 40, 22), kafka_topic: (30, 0, 0)}
    assert _rows(worker, Event, orders) == 120 and _rows(worker, DeadLetter, orders) == 22
    with worker.database.read_session() as session:
        row = session.get(Event, "o-7")
        reasons = session.scalars(select(DeadLetter.error).where(DeadLetter.topic == orders)).all()
    assert row is not None and (row.type, row.data["status"], row.occurred_at.hour) == (orders, "paid", 4)
    assert sum("status: Input should be a valid string" in r for r in reasons) == 15
    assert sum(r.startswith("json:") or "Invalid JSON" in r for r in reasons) == 5
    assert sum("129 characters" in r for r in reasons) == 1
    assert sum("key function raised RuntimeError: no key for boom orders" in r for r in reasons) == 1
    assert len(seen) == 160 and all(isinstance(o, Order) for o in seen)  # replays reach the handler too
    assert sum(_committed(kafka.bootstrap, kafka_group, orders).values()) == 182  # nothing stalls


@pytest.mark.parametrize("client", CLIENTS)
def test_cloudevents_in_both_modes_and_a_decoder_hook(
    kafka, kafka_topic, kafka_group, kafka_settings, kafka_producer, open_worker, database_url, client
) -> None:
    payments, legacy = kafka.create_topic(), kafka.create_topic()
    registry = TopicRegistry()
    registry.topic(payments, model=Payment, format="cloudevents")(lambda batch, event, meta: None)

    def pipes(value: bytes, headers: list[tuple[str, bytes]]) -> object:
        order_id, status = value.decode().split("|")  # a ValueError is a dead letter
        return {"order_id": order_id, "status": status, "ts": dict(headers).get("ts", b"").decode()}

    registry.topic(legacy, model=Order, key=lambda o: o.order_id, decoder=pipes)(lambda batch, order, meta: None)
    structured = [
        json.dumps(
            {"specversion": "1.0", "id": f"p{i}", "source": "/pay", "type": "payment.captured", "data": {"amount": "1"}}
        ).encode()
        for i in range(10)
    ]
    _send(kafka_producer, payments, structured, [("content-type", b"application/cloudevents+json")])
    ce = [("ce_specversion", b"1.0"), ("ce_source", b"/pay"), ("ce_type", b"payment.refunded")]
    for i in range(10):
        kafka_producer.client.send(payments, value=b'{"amount": "2"}', headers=[*ce, ("ce_id", f"b{i}".encode())])
    kafka_producer.client.send(payments, value=b'{"amount": "3"}', headers=ce)  # no ce_id: dead letter
    kafka_producer.client.send(payments, value=structured[0], headers=[])  # structured, recognised: a replay
    _send(kafka_producer, legacy, [f"L{i}|new".encode() for i in range(8)] + [b"no pipes"], [("ts", b"2026-01-01")])
    worker = open_worker(kafka_settings(database_url=database_url, kafka_client=client), topics=registry)
    _drain(worker, 22 + 9)
    assert worker.snapshot().topics == {payments: (20, 1, 1), legacy: (8, 0, 1)}
    with worker.database.read_session() as session:
        binary = session.get(Event, "/pay:b3")
        reasons = session.scalars(select(DeadLetter.error).order_by(DeadLetter.topic)).all()
    assert binary is not None and (binary.type, binary.data) == ("payment.refunded", {"amount": "2"})
    assert sorted(reasons) == sorted(
        [
            "schema: CloudEvent attribute id: required, a non-empty string",
            "decode: decoder raised ValueError: not enough values to unpack (expected 2, got 1)",
        ]
    )


def test_host_app_topic_counts_and_lag_in_consumer_status(
    kafka, kafka_topic, kafka_settings, kafka_producer, host_app
) -> None:
    orders = kafka.create_topic()
    scheduler = ServiceScheduler(kafka_settings(builtin_tasks=""))

    @scheduler.topic(orders, model=Order, key=lambda o: o.order_id)
    def on_order(batch: Any, order: Order, meta: Any) -> None: ...

    app = FastAPI(lifespan=scheduler.lifespan)
    app.include_router(scheduler.router, prefix="/ops")
    app.mount("/ops/ui", scheduler.dashboard)
    served = host_app(app)
    _send(kafka_producer, orders, [_order(f"o-{i}") for i in range(25)] + [_order("o-1"), b"{}"])

    def counted() -> dict[str, Any] | None:
        body = served.client.get("/ops/consumer").json()
        entry = body["topics"].get(orders)
        return body if entry and entry["stored"] + entry["duplicates"] + entry["dead_lettered"] == 27 else None

    body = wait_until(counted, timeout=30, interval=0.1)
    assert body["topics"][orders] | {"lag": None} == {"stored": 25, "duplicates": 1, "dead_lettered": 1, "lag": None}
    wait_until(lambda: served.client.get("/ops/consumer").json()["topics"][orders]["lag"] == 0, timeout=10)
    page = served.client.get("/ops/ui/panels/consumer").text
    row = f"<tr><td><code>{orders}</code></td><td>25</td><td>1</td><td>1</td><td>0</td></tr>"
    assert 'id="consumer-topics"' in page and row in page, page


def test_reference_service_serves_a_topic_declared_in_a_task_module(
    kafka, kafka_topic, kafka_settings, kafka_producer, live_app, tmp_path, monkeypatch
) -> None:
    from servicescheduler import topics

    orders = kafka.create_topic()
    module = f"shop_{orders.replace('-', '_')}"
    monkeypatch.setattr(topics, "_contracts", {})  # the module-level registry, restored afterwards
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / f"{module}.py").write_text(
        "from datetime import datetime\n"
        "from pydantic import BaseModel\n"
        "from servicescheduler import topics\n\n\n"
        "class Order(BaseModel):\n"
        "    order_id: str\n"
        "    status: str\n\n\n"
        f"@topics.topic({orders!r}, model=Order, key=lambda o: 'order:' + o.order_id, type='order')\n"
        "def on_order(batch, order, meta):\n"
        "    pass\n"
    )
    served = live_app(kafka_settings(task_modules=module, builtin_tasks=""))
    _send(kafka_producer, orders, [_order(f"o-{i}") for i in range(10)] + [b'{"order_id": 1}'])

    def counted() -> dict[str, Any] | None:
        entry = served.client.get("/consumer").json()["topics"].get(orders)
        return entry if entry and entry["stored"] + entry["dead_lettered"] == 11 else None

    entry = wait_until(counted, timeout=30, interval=0.1)
    assert (entry["stored"], entry["dead_lettered"]) == (10, 1)
    with served.application.database.read_session() as session:
        row = session.get(Event, "order:o-3")
    assert row is not None and (row.type, row.topic, row.data["order_id"]) == ("order", orders, "o-3")


def _topic_series(text: str, topic: str) -> dict[str, float]:
    """The per-topic consumer series of /metrics for `topic`: {"stored": n, ..., "lag": n}."""
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("topic") != topic:
                continue
            if sample.name == "consumer_topic_events_total":
                found[sample.labels["result"]] = sample.value
            elif sample.name == "consumer_topic_lag":
                found["lag"] = sample.value
    return found


def test_per_topic_series_in_metrics_match_the_consumer_status(
    kafka, kafka_topic, kafka_settings, kafka_producer, host_app
) -> None:
    orders = kafka.create_topic()
    scheduler = ServiceScheduler(kafka_settings(builtin_tasks=""))

    @scheduler.topic(orders, model=Order, key=lambda o: o.order_id)
    def on_order(batch: Any, order: Order, meta: Any) -> None: ...

    app = FastAPI(lifespan=scheduler.lifespan)
    app.include_router(scheduler.router, prefix="/ops")
    served = host_app(app)
    _send(kafka_producer, orders, [_order(f"o-{i}") for i in range(12)] + [_order("o-3"), _order("o-4"), b"{}"])
    kafka_producer.send(kafka_topic, _events(5))

    def settled() -> dict[str, float] | None:
        series = _topic_series(served.client.get("/ops/metrics").text, orders)
        return series if series.get("lag") == 0 and sum(series.values()) == 15 else None

    series = wait_until(settled, timeout=30, interval=0.1)
    assert series == {"stored": 12.0, "duplicate": 2.0, "dead_lettered": 1.0, "lag": 0.0}
    entry = served.client.get("/ops/consumer").json()["topics"][orders]
    assert entry == {"stored": 12, "duplicates": 2, "dead_lettered": 1, "lag": 0}
    # Envelope events on KAFKA_TOPICS count under their own topic; its dead letters are exported
    # at 0 from the start (the alert's increase() then sees the first one).
    envelope = wait_until(
        lambda: (s := _topic_series(served.client.get("/ops/metrics").text, kafka_topic)).get("stored") == 5 and s,
        timeout=10,
    )
    assert envelope == {"stored": 5.0, "dead_lettered": 0.0, "lag": 0.0}
