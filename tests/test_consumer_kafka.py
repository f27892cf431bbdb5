"""The consumer against a real broker (Tansu) and real databases."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from kafka import KafkaConsumer
from kafka.structs import TopicPartition
from sqlalchemy import func, select

from devtools.produce import bad_message
from devtools.webhook import WebhookReceiver
from servicescheduler.consumers.running.worker import ConsumerWorker
from servicescheduler.consumers.storing.handlers import HandlerRegistry
from servicescheduler.scheduling.registry import TaskRegistry
from servicescheduler.storage.db import Database
from servicescheduler.storage.migrate import upgrade
from servicescheduler.storage.models import DeadLetter, Event, Notification
from tests.conftest import AUTH, wait_until

pytestmark = pytest.mark.kafka


def _events(n: int, prefix: str = "e", **extra) -> list[dict]:
    types = ("order.created", "payment.captured", "user.signed_up")
    return [{"id": f"{prefix}{i}", "type": types[i % 3], "data": {"i": i, "pad": "x" * 200}, **extra} for i in range(n)]


def _count(database: Database, model) -> int:
    with database.read_session() as session:
        return session.scalar(select(func.count()).select_from(model))


def _committed(bootstrap: str, group: str, topic: str) -> dict[int, int | None]:
    """The group's committed offsets per partition, read without joining the group.

    (Offsets start at 0 in a fresh topic, so their sum is the number of messages covered.
    Tansu's ListOffsets answers lagged behind the real end here, so end_offsets() is not used.)
    """
    client = KafkaConsumer(bootstrap_servers=[bootstrap], group_id=group, enable_auto_commit=False)
    try:
        return {p: client.committed(TopicPartition(topic, p)) for p in range(3)}
    finally:
        client.close(autocommit=False)


def _drain(worker: ConsumerWorker, expected: int, timeout: float = 30) -> float:
    """poll_once until `expected` messages were processed; returns seconds from the first message."""
    deadline, first = time.monotonic() + timeout, None
    while worker.snapshot().messages_processed < expected:
        assert time.monotonic() < deadline, worker.snapshot()
        outcome = worker.poll_once()
        if outcome.messages and first is None:
            first = time.monotonic()
    return time.monotonic() - (first or time.monotonic())


def test_thousand_events_stored_exactly_once_and_committed(
    kafka, kafka_topic, kafka_group, kafka_settings, kafka_producer, open_worker, database_url
) -> None:
    settings = kafka_settings(database_url=database_url)
    events = _events(1000)
    kafka_producer.send(kafka_topic, events + events[:50])  # 50 replays of the same ids
    worker = open_worker(settings)
    seconds = _drain(worker, 1050)
    snap = worker.snapshot()
    assert (snap.events_stored, snap.duplicates_skipped, snap.dead_lettered) == (1000, 50, 0)
    assert _count(worker.database, Event) == 1000
    assert sum(_committed(kafka.bootstrap, kafka_group, kafka_topic).values()) == 1050
    caught_up = {f"{kafka_topic}:{p}": 0 for p in range(3)}
    wait_until(lambda: worker.poll_once() and worker.snapshot().lag == caught_up, timeout=5)
    print(f"\n{worker.database.dialect}: 1050 messages in {seconds:.3f} s = {1050 / max(seconds, 1e-6):.0f}/s")


def test_malformed_messages_are_dead_lettered_without_blocking(
    kafka, kafka_topic, kafka_group, kafka_settings, kafka_producer, open_worker, database_url
) -> None:
    settings = kafka_settings(database_url=database_url, kafka_max_message_bytes=2048)
    good = _events(180)
    kinds = ["encoding", "json", "schema", "oversize", "empty"]
    bad = [
        b"" if kind == "empty" else bad_message(kind, __import__("random").Random(i), max_bytes=2048)
        for i, kind in enumerate(kinds * 4)
    ]
    mixed = [m for pair in zip(good[:20], bad, strict=False) for m in pair] + good[20:]
    kafka_producer.send(kafka_topic, mixed, key=b"same-partition")  # bad ones interleaved in ONE partition
    worker = open_worker(settings)
    _drain(worker, 200)
    assert _count(worker.database, Event) == 180
    with worker.database.read_session() as session:
        errors = [row.error for row in session.scalars(select(DeadLetter))]
    assert len(errors) == 20
    assert sorted(e.split(":")[0] for e in errors) == sorted(kinds * 4)
    assert all(len(e) > len(e.split(":")[0]) + 2 for e in errors)  # a reason, not just a label
    assert sum(o or 0 for o in _committed(kafka.bootstrap, kafka_group, kafka_topic).values()) == 200


def test_failing_handler_is_dead_lettered_after_attempts_and_others_flow(
    kafka_topic, kafka_settings, kafka_producer, open_worker
) -> None:
    registry = HandlerRegistry()
    calls = []

    @registry.register("payment.captured")
    def explode(batch, event, meta) -> None:
        calls.append(event.id)
        raise ValueError("ledger rejected")

    kafka_producer.send(kafka_topic, _events(30))
    worker = open_worker(kafka_settings(kafka_max_attempts=3), registry=registry)
    _drain(worker, 30)
    assert _count(worker.database, Event) == 20  # order.created and user.signed_up
    with worker.database.read_session() as session:
        errors = list(session.scalars(select(DeadLetter.error)))
    assert len(errors) == 10 and all("ValueError: ledger rejected" in e for e in errors)
    assert len(calls) == 30  # 10 messages x 3 attempts


def test_database_locked_mid_stream_loses_nothing(
    kafka, kafka_topic, kafka_group, kafka_settings, kafka_producer, tmp_path
) -> None:
    path = tmp_path / "locked.db"
    settings = kafka_settings(database_url=f"sqlite:///{path}", sqlite_busy_timeout_ms=100)
    database = Database(settings)
    upgrade(database.engine)
    worker = ConsumerWorker(settings=settings, database=database)
    worker.start()
    try:
        kafka_producer.send(kafka_topic, _events(100, "a"))
        wait_until(lambda: _count(database, Event) == 100, timeout=20)
        # Offsets follow the rows (right after them, or after the next poll with store-ahead).
        wait_until(lambda: sum(o or 0 for o in _committed(kafka.bootstrap, kafka_group, kafka_topic).values()) == 100)
        before = _committed(kafka.bootstrap, kafka_group, kafka_topic)
        lock = sqlite3.connect(path, isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
        kafka_producer.send(kafka_topic, _events(100, "b"))
        wait_until(lambda: "locked" in (worker.snapshot().last_error or ""), timeout=10)
        time.sleep(0.5)  # a few failing retries
        assert _committed(kafka.bootstrap, kafka_group, kafka_topic) == before  # nothing committed
        snapshot = worker.snapshot()  # between retries too: only a store that succeeds ends it
        assert snapshot.state == "db_unavailable" and "locked" in (snapshot.db_error or ""), snapshot
        lock.rollback()
        lock.close()
        wait_until(lambda: _count(database, Event) == 200, timeout=20)
        assert _count(database, DeadLetter) == 0
        # The rows can be visible a moment before the worker has taken the batch back from the
        # store-ahead thread and said so: wait for its word, bounded.
        wait_until(lambda: worker.snapshot().state == "running", timeout=10)
        snapshot = worker.snapshot()
        assert (snapshot.state, snapshot.db_error, snapshot.db_unavailable_since) == ("running", None, None)
        wait_until(lambda: sum(_committed(kafka.bootstrap, kafka_group, kafka_topic).values()) == 200, timeout=10)
    finally:
        assert worker.stop(5)
        database.dispose()


def test_store_ahead_rewinds_the_batch_in_flight_and_the_one_polled_after_it(
    kafka, kafka_topic, kafka_group, kafka_settings, kafka_producer, tmp_path, monkeypatch
) -> None:
    path = tmp_path / "ahead.db"
    settings = kafka_settings(database_url=f"sqlite:///{path}", sqlite_busy_timeout_ms=100, kafka_batch_size=50)
    database = Database(settings)
    upgrade(database.engine)
    worker = ConsumerWorker(settings=settings, database=database)
    assert worker.stores_ahead  # KAFKA_STORE_AHEAD=auto on SQLite
    rewound: list[int] = []  # messages sent back per failure (the worker's own rewind, observed)
    rewind = worker._rewind

    def observed_rewind(consumer, batches, exc):
        rewound.append(sum(len(m) for records in batches for m in records.values()))
        return rewind(consumer, batches, exc)

    monkeypatch.setattr(worker, "_rewind", observed_rewind)

    def rewound_two_batches() -> bool:  # batch N failed in flight after N+1 was polled: over 50
        return any(messages > settings.kafka_batch_size for messages in rewound)

    worker.start()
    try:
        kafka_producer.send(kafka_topic, _events(50, "a"))
        wait_until(lambda: _count(database, Event) == 50, timeout=20)
        lock = sqlite3.connect(path, isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
        kafka_producer.send(kafka_topic, _events(500, "b"))
        wait_until(rewound_two_batches, timeout=20)
        lock.rollback()
        lock.close()
        wait_until(lambda: _count(database, Event) == 550, timeout=30)
        wait_until(lambda: sum(o or 0 for o in _committed(kafka.bootstrap, kafka_group, kafka_topic).values()) == 550)
        snapshot = worker.snapshot()
        assert (snapshot.events_stored, snapshot.duplicates_skipped, snapshot.dead_lettered) == (550, 0, 0)
        assert _count(database, DeadLetter) == 0
    finally:
        assert worker.stop(5)
        database.dispose()


def _consumer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "kafka-consumer"]


@pytest.mark.slow  # over 8 s (--durations)
@pytest.mark.timeout(120)
def test_disable_enable_and_crash_mid_stream_no_loss_no_duplicates(
    live_app, kafka_topic, kafka_settings, kafka_producer, monkeypatch
) -> None:
    crash = threading.Event()
    original = ConsumerWorker._step

    def crashing_step(self):
        if crash.is_set():
            crash.clear()
            raise RuntimeError("forced crash")
        return original(self)

    monkeypatch.setattr(ConsumerWorker, "_step", crashing_step)
    app = live_app(kafka_settings(), TaskRegistry())
    database = app.application.database
    kafka_producer.send(kafka_topic, _events(300, "a"))
    wait_until(lambda: _count(database, Event) == 300, timeout=20)

    started = time.monotonic()
    body = app.client.post("/consumer/disable", headers=AUTH).json()
    assert body["state"] == "disabled" and not _consumer_threads()
    assert time.monotonic() - started < 5  # the stop bound
    kafka_producer.send(kafka_topic, _events(300, "b"))
    time.sleep(0.3)
    assert _count(database, Event) == 300  # really stopped
    assert app.client.post("/consumer/enable", headers=AUTH).json()["enabled"] is True
    wait_until(lambda: _count(database, Event) == 600, timeout=20)

    crash.set()
    wait_until(lambda: app.client.get("/consumer").json()["restarts"] == 1, timeout=10)
    kafka_producer.send(kafka_topic, _events(300, "c"))
    wait_until(lambda: _count(database, Event) == 900, timeout=30)
    wait_until(lambda: app.client.get("/consumer").json()["events_stored"] == 900, timeout=5)
    status = app.client.get("/consumer").json()
    assert status["state"] == "running" and status["last_error"] == "RuntimeError: forced crash"
    assert status["events_stored"] == 900 and status["duplicates_skipped"] == 0  # commits held
    assert len(_consumer_threads()) == 1


@pytest.mark.slow  # over 8 s (--durations)
@pytest.mark.timeout(120)
def test_broker_down_at_startup_then_recovers_by_itself(
    live_app, kafka, kafka_topic, kafka_settings, kafka_producer
) -> None:
    kafka_producer.send(kafka_topic, _events(200))  # the backlog
    settings = kafka_settings(
        kafka_stop_timeout_seconds=1,
        consumer_backoff_base_seconds=0.2,
        consumer_backoff_cap_seconds=1.0,
        consumer_ready_grace_seconds=0.5,
    )
    with kafka.outage():
        started = time.monotonic()
        app = live_app(settings, TaskRegistry())
        assert time.monotonic() - started < 5  # start-up is not blocked by the broker
        assert app.client.get("/health").status_code == 200
        wait_until(lambda: app.client.get("/consumer").json()["restarts"] >= 3, timeout=20)
        status = app.client.get("/consumer").json()
        assert status["state"] in ("backoff", "starting", "crash_looping")
        assert "KafkaTimeoutError" in status["last_error"]
        ready = app.client.get("/ready")
        assert ready.status_code == 503 and "consumer" in ready.json()["detail"]
    wait_until(lambda: _count(app.application.database, Event) == 200, timeout=30)
    wait_until(lambda: app.client.get("/ready").status_code == 200, timeout=10)
    assert app.client.get("/consumer").json()["state"] == "running"


@pytest.mark.realtime
@pytest.mark.parametrize("channel", ["log", "webhook"])
def test_notify_event_is_delivered_within_a_second(
    live_app, kafka_topic, kafka_settings, kafka_producer, channel
) -> None:
    with WebhookReceiver(status=204) as receiver:
        url = receiver.url if channel == "webhook" else None
        app = live_app(kafka_settings(notify_webhook_url=url))
        wait_until(lambda: app.client.get("/consumer").json()["assigned_partitions"], timeout=20)
        sent = time.time()
        kafka_producer.send(
            kafka_topic,
            [
                {
                    "id": "n1",
                    "type": "order.created",
                    "data": {"total": 5},
                    "notify": {"channel": channel, "recipient": "ops@example.com"},
                }
            ],
        )

        def delivered() -> bool:
            with app.application.database.read_session() as session:
                return session.scalar(select(Notification.status).where(Notification.event_id == "n1")) == "sent"

        wait_until(delivered, timeout=5, interval=0.005)
        assert time.time() - sent < 1.0
        if channel == "webhook":
            assert receiver.received[0]["payload"]["type"] == "order.created"
            assert receiver.received_at[0] - sent < 1.0
        else:
            assert receiver.received == []


def test_producer_cli_and_dead_letter_topic(kafka, kafka_topic, kafka_settings, open_worker, capsys) -> None:
    from devtools import produce

    dlq = kafka.create_topic(partitions=1)
    code = produce.main(
        [
            "--count",
            "60",
            "--bad-ratio",
            "0.2",
            "--notify-ratio",
            "0.5",
            "--seed",
            "7",
            "--topic",
            kafka_topic,
            "--bootstrap",
            kafka.bootstrap,
            "--max-message-bytes",
            "2048",
        ]
    )
    assert code == 0
    summary = capsys.readouterr().out
    counts = dict(part.split("=") for part in summary.split(": ", 1)[1].split(", "))
    bad = sum(int(counts[kind]) for kind in produce.BAD_KINDS)
    assert bad > 0 and int(counts["good"]) + bad == 60
    worker = open_worker(kafka_settings(kafka_max_message_bytes=2048, kafka_dlq_topic=dlq))
    _drain(worker, 60)
    assert _count(worker.database, Event) == int(counts["good"])
    assert _count(worker.database, DeadLetter) == bad
    assert _count(worker.database, Notification) == int(counts["notify"])
    reader = KafkaConsumer(
        bootstrap_servers=[kafka.bootstrap],
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
    )
    try:
        reader.assign([TopicPartition(dlq, 0)])
        copies = [message for _, message in zip(range(bad), reader, strict=False)]
    finally:
        reader.close()
    assert len(copies) == bad
    headers = dict(copies[0].headers)
    assert headers["source_topic"].decode() == kafka_topic and headers["error"]


def test_consumer_runs_when_the_scheduler_is_disabled(live_app, kafka_settings, kafka_producer, kafka_topic) -> None:
    app = live_app(kafka_settings(scheduler_enabled=False), TaskRegistry())
    kafka_producer.send(kafka_topic, _events(50, "s"))
    wait_until(lambda: _count(app.application.database, Event) == 50, timeout=30)
    assert app.client.get("/health").status_code == 200
