"""Poison messages against the real broker and both databases: one dead letter each, never the pipeline.

Every hostile message sits in the SAME partition as valid events before and after it; the
worker is driven with `poll_once()`, so an exception escaping the worker fails the test (in
production it killed the thread, the supervisor restarted it and it read the same batch forever).
"""

from __future__ import annotations

import json
import time

import pytest
from kafka import KafkaProducer
from sqlalchemy import select

from servicescheduler.consumers.storing.handlers import HandlerRegistry
from servicescheduler.storage.models import AuditEntry, DeadLetter, Event
from servicescheduler.support.clock import utcnow
from tests.conftest import AUTH, wait_until
from tests.test_consumer_kafka import _committed, _count, _drain

pytestmark = pytest.mark.kafka

FAR_FUTURE_MS = 10**16  # year ~318,857: beyond what a Python datetime (year 9999) can hold


def _valid(prefix: str, n: int) -> list[bytes]:
    return [json.dumps({"id": f"{prefix}{i}", "type": "order.created", "data": {"i": i}}).encode() for i in range(n)]


def _poison() -> list[tuple[str, bytes, dict]]:
    """(label, value, send options) of messages a real producer can send; label 'stored:' ones are valid."""
    deep = b'{"id": "deep", "type": "t", "data": {"x": ' + b"[" * 5000 + b"]" * 5000 + b"}}"
    return [
        ("deep-nesting", deep, {}),
        (
            "year-1-plus-one-hour",
            json.dumps({"id": "y1", "type": "t", "occurred_at": "0001-01-01T00:00:00+01:00"}).encode(),
            {},
        ),
        (
            "year-9999-minus-one-hour",
            json.dumps({"id": "y9", "type": "t", "occurred_at": "9999-12-31T23:30:00-01:00"}).encode(),
            {},
        ),
        ("far-future-kafka-timestamp", json.dumps({"id": "ts", "type": "t"}).encode(), {"timestamp_ms": FAR_FUTURE_MS}),
        ("nul-in-id", b'{"id": "n\\u0000ul", "type": "t"}', {}),
        ("nul-in-type", b'{"id": "nt", "type": "t\\u0000"}', {}),
        ("nul-in-recipient", b'{"id": "nr", "type": "t", "notify": {"channel": "log", "recipient": "a\\u0000"}}', {}),
        ("lone-surrogate-in-id", b'{"id": "\\ud800", "type": "t"}', {}),
        ("lone-surrogate-in-data", b'{"id": "ls", "type": "t", "data": {"k": "\\udfff"}}', {}),
        ("number-overflows-double", b'{"id": "big", "type": "t", "data": {"n": 1e400}}', {}),
        ("integer-with-5000-digits", b'{"id": "digits", "type": "t", "data": {"n": ' + b"9" * 5000 + b"}}", {}),
        ("oversize-value", json.dumps({"id": "ov", "type": "t", "data": {"pad": "x" * 20_000}}).encode(), {}),
        ("stored:oversize-key", json.dumps({"id": "ok", "type": "t"}).encode(), {"key": b"k" * 20_000}),
        (
            "stored:oversize-headers",
            json.dumps({"id": "oh", "type": "t"}).encode(),
            {"headers": [(f"h{i}", b"v" * 2000) for i in range(20)]},
        ),
        ("stored:nul-in-data", b'{"id": "nd", "type": "t", "data": {"k": "a\\u0000b"}}', {}),
        (
            "stored:year-1-utc",
            json.dumps({"id": "y1utc", "type": "t", "occurred_at": "0001-01-01T00:00:00Z"}).encode(),
            {},
        ),
    ]


def _send_all(bootstrap: str, topic: str, messages: list[tuple[bytes, dict]]) -> None:
    """Sends every message to partition 0 (one partition: a stuck message would block the rest)."""
    producer = KafkaProducer(bootstrap_servers=[bootstrap], acks="all", linger_ms=5, max_request_size=4_000_000)
    try:
        for value, options in messages:
            producer.send(topic, value=value, partition=0, **options)
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=5)


def test_each_poison_message_costs_one_dead_letter_and_blocks_nothing(
    kafka, kafka_topic, kafka_group, kafka_settings, open_worker, database_url
) -> None:
    poison = _poison()
    messages: list[tuple[bytes, dict]] = []
    for index, (_, value, options) in enumerate(poison):
        messages += [(v, {}) for v in _valid(f"before{index}-", 5)]
        messages.append((value, options))
        messages += [(v, {}) for v in _valid(f"after{index}-", 5)]
    _send_all(kafka.bootstrap, kafka_topic, messages)
    worker = open_worker(kafka_settings(database_url=database_url, kafka_max_message_bytes=16_384))
    _drain(worker, len(messages))  # an exception out of poll_once fails here

    expected_stored = 10 * len(poison) + sum(label.startswith("stored:") for label, _, _ in poison)
    expected_dead = sum(not label.startswith("stored:") for label, _, _ in poison)
    assert _count(worker.database, Event) == expected_stored
    with worker.database.read_session() as session:
        dead = list(session.execute(select(DeadLetter.offset, DeadLetter.error, DeadLetter.value)))
    assert len(dead) == expected_dead, [d.error[:80] for d in dead]
    assert len({d.offset for d in dead}) == expected_dead  # each exactly once
    assert all(":" in d.error and len(d.error) > 12 and "\x00" not in d.error for d in dead)
    assert all(d.value is not None for d in dead)
    assert sum(o or 0 for o in _committed(kafka.bootstrap, kafka_group, kafka_topic).values()) == len(messages)
    snap = worker.snapshot()
    assert (snap.events_stored, snap.dead_lettered, snap.fatal_error) == (expected_stored, expected_dead, None)


def _invoice_registry() -> HandlerRegistry:
    """A handler whose row the database refuses (NOT NULL) for events with `data.bad`."""
    registry = HandlerRegistry()

    @registry.register("order.created")
    def audit(batch, event, meta) -> None:
        actor = None if (event.data or {}).get("bad") else "consumer"
        batch.add(AuditEntry(at=utcnow(), actor=actor, action="order", target=event.id[:80]))

    return registry


def test_store_failure_is_isolated_by_bisecting_and_the_culprit_goes_to_the_dlq(
    kafka, kafka_topic, kafka_settings, open_worker, database_url
) -> None:
    from kafka import KafkaConsumer
    from kafka.structs import TopicPartition

    dlq = kafka.create_topic(partitions=1)
    values = _valid("ok", 60)
    values[17] = json.dumps({"id": "bad17", "type": "order.created", "data": {"bad": True}}).encode()
    values[42] = json.dumps({"id": "bad42", "type": "order.created", "data": {"bad": True}}).encode()
    _send_all(kafka.bootstrap, kafka_topic, [(v, {}) for v in values])
    worker = open_worker(kafka_settings(database_url=database_url, kafka_dlq_topic=dlq), registry=_invoice_registry())
    _drain(worker, 60)
    assert _count(worker.database, Event) == 58
    assert _count(worker.database, AuditEntry) == 58
    with worker.database.read_session() as session:
        dead = sorted(session.execute(select(DeadLetter.offset, DeadLetter.error)))
    assert [d.offset for d in dead] == [17, 42]
    assert all(d.error.startswith("store: IntegrityError") for d in dead), dead
    reader = KafkaConsumer(
        bootstrap_servers=[kafka.bootstrap],
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
    )
    try:
        reader.assign([TopicPartition(dlq, 0)])
        copies = [message for _, message in zip(range(2), reader, strict=False)]
    finally:
        reader.close()
    assert sorted(json.loads(c.value)["id"] for c in copies) == ["bad17", "bad42"]
    assert all(dict(c.headers)["error"].startswith(b"store: IntegrityError") for c in copies)


@pytest.mark.timeout(120)
def test_live_consumer_survives_poison_without_a_restart(live_app, kafka, kafka_topic, kafka_settings) -> None:
    from servicescheduler.scheduling.registry import TaskRegistry

    app = live_app(kafka_settings(kafka_max_message_bytes=16_384), TaskRegistry())
    poison = [(value, options) for _, value, options in _poison()]
    _send_all(
        kafka.bootstrap, kafka_topic, [(v, {}) for v in _valid("a", 50)] + poison + [(v, {}) for v in _valid("b", 50)]
    )
    wait_until(lambda: app.client.get("/consumer").json()["messages_processed"] == 100 + len(poison), timeout=30)
    status = app.client.get("/consumer").json()
    assert status["restarts"] == 0 and status["state"] == "running", status
    assert status["dead_lettered"] == sum(not label.startswith("stored:") for label, _, _ in _poison())


@pytest.mark.timeout(120)
def test_enable_and_restart_are_idempotent_one_check_chain(live_app, kafka_settings, monkeypatch) -> None:
    from servicescheduler.consumers.running.supervisor import ConsumerSupervisor
    from servicescheduler.scheduling.registry import TaskRegistry

    calls: list[float] = []
    original = ConsumerSupervisor.check

    def counting_check(self, now):
        calls.append(time.monotonic())
        return original(self, now)

    monkeypatch.setattr(ConsumerSupervisor, "check", counting_check)
    app = live_app(kafka_settings(), TaskRegistry())
    wait_until(lambda: app.client.get("/consumer").json()["state"] == "running", timeout=30)
    for _ in range(50):
        assert app.client.post("/consumer/enable", headers=AUTH).status_code == 200
    assert app.client.post("/consumer/restart", headers=AUTH).status_code == 200
    wait_until(lambda: app.client.get("/consumer").json()["state"] == "running", timeout=30)
    window_start = time.monotonic()
    wait_until(lambda: time.monotonic() - window_start >= 3.0, timeout=5)
    in_window = [t for t in calls if window_start <= t < window_start + 3.0]
    assert len(in_window) <= 4, f"{len(in_window)} checks in 3 s: one chain checks once a second"


@pytest.mark.parametrize("through", ["sqlalchemy", "driver"])
def test_connection_lost_mid_batch_is_retried_not_dead_lettered(
    through, kafka, kafka_topic, kafka_group, kafka_settings, open_worker, database_url
) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite's transient failure is the lock: test_database_locked_mid_stream_loses_nothing")
    registry = HandlerRegistry()
    killed: list[str] = []

    @registry.register("order.created")
    def lose_connection_once(batch, event, meta) -> None:
        if not killed:  # the server ends this session mid-transaction: OperationalError
            killed.append(event.id)
            connection = batch.session.connection()
            kill = "SELECT pg_terminate_backend(pg_backend_pid())"
            if through == "driver":  # as the bulk path (COPY) meets it: psycopg's own OperationalError
                connection.connection.driver_connection.execute(kill)
            connection.exec_driver_sql(kill)

    _send_all(kafka.bootstrap, kafka_topic, [(v, {}) for v in _valid("c", 300)])
    worker = open_worker(
        kafka_settings(database_url=database_url, consumer_backoff_base_seconds=0.05), registry=registry
    )
    deadline = time.monotonic() + 60
    while _count(worker.database, Event) < 300:
        assert time.monotonic() < deadline, worker.snapshot()
        outcome = worker.poll_once()
        assert outcome.dead_lettered == 0
    assert killed and "OperationalError" in (worker.snapshot().last_error or "")
    assert _count(worker.database, DeadLetter) == 0
    assert sum(o or 0 for o in _committed(kafka.bootstrap, kafka_group, kafka_topic).values()) == 300
