"""Consumer logic without a broker: decoding, handler registry, backoff and supervision."""

from __future__ import annotations

import dataclasses
import json
import random
from collections import namedtuple
from datetime import UTC, datetime

import pytest

from servicescheduler.consumers.decoding.events import BadMessage, decode, decode_key
from servicescheduler.consumers.running.status import WorkerSnapshot
from servicescheduler.consumers.running.supervisor import ConsumerSupervisor
from servicescheduler.consumers.storing.handlers import BatchWriter, HandlerRegistry, MessageMeta, store_event
from servicescheduler.metrics import Metrics
from servicescheduler.support.backoff import backoff_ceiling, backoff_delay
from servicescheduler.vocabulary import WorkerState

Record = namedtuple("Record", "value timestamp key", defaults=(1_700_000_000_000, None))


def _msg(payload) -> Record:
    return Record(json.dumps(payload).encode() if not isinstance(payload, bytes) else payload)


# ----------------------------------------------------------------------------- decoding
def test_valid_event_gets_the_kafka_timestamp_and_ignores_unknown_fields() -> None:
    event = decode(_msg({"id": "e1", "type": "order.created", "data": {"a": 1}, "extra": True}))
    assert (event.id, event.type, event.data) == ("e1", "order.created", {"a": 1})
    assert event.occurred_at == datetime.fromtimestamp(1_700_000_000, tz=UTC)


def test_explicit_occurred_at_is_normalised_to_utc() -> None:
    event = decode(_msg({"id": "e1", "type": "t", "occurred_at": "2025-01-01T14:00:00+02:00"}))
    assert event.occurred_at == datetime(2025, 1, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    "value,kind,fragment",
    [
        (b"", "empty", "no value"),
        (b"\xff\xfe{}", "encoding", "not UTF-8"),
        (b'{"id": "x", "type": ', "json", "invalid JSON"),
        (b'{"id": "x", "type": "t", "data": {"v": NaN}}', "json", "NaN"),
        (b"[1, 2]", "schema", "JSON object"),
        (json.dumps({"id": "", "type": 3}).encode(), "schema", "id"),
        (json.dumps({"type": "t"}).encode(), "schema", "id: Field required"),
        (json.dumps({"id": "x" * 129, "type": "t"}).encode(), "schema", "id"),
        (
            json.dumps({"id": "x", "type": "t", "notify": {"channel": "sms", "recipient": "a"}}).encode(),
            "schema",
            "notify.channel",
        ),
        (json.dumps({"id": "x", "type": "t", "occurred_at": "yesterday"}).encode(), "schema", "occurred_at"),
        (json.dumps({"id": "x", "type": "t", "data": [1]}).encode(), "schema", "data"),
    ],
)
def test_every_bad_kind_raises_a_typed_reason(value: bytes, kind: str, fragment: str) -> None:
    with pytest.raises(BadMessage) as caught:
        decode(Record(value))
    assert caught.value.kind == kind
    assert fragment in caught.value.reason


def test_oversize_is_checked_before_parsing() -> None:
    value = json.dumps({"id": "x", "type": "t", "data": {"pad": "x" * 2000}}).encode()
    with pytest.raises(BadMessage) as caught:
        decode(Record(value), max_bytes=1024)
    assert caught.value.kind == "oversize" and str(len(value)) in caught.value.reason


def test_schema_reason_lists_every_bad_field() -> None:
    with pytest.raises(BadMessage) as caught:
        decode(_msg({"id": "", "notify": {"channel": "webhook"}}))
    reason = caught.value.reason
    assert "id:" in reason and "type:" in reason and "notify.recipient:" in reason


def test_keys_are_text_when_utf8() -> None:
    assert decode_key(b"order-1") == "order-1"
    assert decode_key(b"\xff") is None
    assert decode_key(None) is None


# ----------------------------------------------------------------------------- handlers
def _meta() -> MessageMeta:
    return MessageMeta("t", 0, 5, "k", datetime.now(UTC))


def test_default_handler_stores_event_and_notification() -> None:
    registry = HandlerRegistry()
    batch = BatchWriter(session=None)
    event = decode(_msg({"id": "e1", "type": "x", "data": {"a": 1}, "notify": {"channel": "log", "recipient": "ops"}}))
    registry.handle(batch, event, _meta())
    assert [row["id"] for row in batch.events] == ["e1"]
    assert batch.notifications[0]["event_id"] == "e1"
    assert batch.notifications[0]["payload"]["type"] == "x"
    assert batch.notifications[0]["status"] == "pending"


def test_registered_handler_runs_after_default_storing_and_only_for_its_type() -> None:
    registry = HandlerRegistry()
    seen = []

    @registry.register("order.created")
    def on_order(batch, event, meta) -> None:
        seen.append(event.id)
        batch.add("invoice-row")

    with pytest.raises(ValueError):
        registry.register("order.created")(on_order)
    batch = BatchWriter(session=None)
    registry.handle(batch, decode(_msg({"id": "o1", "type": "order.created"})), _meta())
    registry.handle(batch, decode(_msg({"id": "u1", "type": "user.signed_up"})), _meta())
    assert seen == ["o1"]
    assert [row["id"] for row in batch.events] == ["o1", "u1"]
    assert batch.rows == ["invoice-row"]
    assert registry.types() == ["order.created"]


def test_handler_may_take_over_storing() -> None:
    registry = HandlerRegistry()
    registry.register("audit.only", store_event=False)(lambda batch, event, meta: None)
    batch = BatchWriter(session=None)
    registry.handle(batch, decode(_msg({"id": "a1", "type": "audit.only"})), _meta())
    assert batch.events == []
    assert store_event is registry.default


# ----------------------------------------------------------------------------- backoff
def test_backoff_is_full_jitter_growing_and_capped() -> None:
    rng = random.Random(7)
    samples = {a: [backoff_delay(a, base=1, factor=2, cap=30, rng=rng) for _ in range(400)] for a in range(8)}
    for attempt, values in samples.items():
        ceiling = min(30, 2**attempt)
        assert all(0 <= v <= ceiling for v in values)
        assert max(values) > 0.8 * ceiling  # spread over the whole range, not fixed
        assert min(values) < 0.2 * ceiling
    means = [sum(v) / len(v) for v in samples.values()]
    assert means[0] < means[2] < means[4]  # growing
    assert abs(means[7] - 15) < 2.5  # capped at 30: the mean of uniform(0, 30)


def test_backoff_is_bounded_for_any_attempt_number() -> None:

    rng = random.Random(3)
    for attempt in (1_023, 1_024, 1_025, 10_000, 10**9):
        # Settings are floats: 2.0 ** 1024 raised OverflowError in the supervisor and the worker.
        assert 0 <= backoff_delay(attempt, base=1.0, factor=2.0, cap=30.0, rng=rng) <= 30
        assert backoff_ceiling(attempt, base=1.0, factor=2.0, cap=30.0) == 30
    assert backoff_ceiling(3, base=1, factor=2, cap=30) == 8
    assert backoff_ceiling(10**6, base=0.5, factor=1.0, cap=30) == 0.5


def test_check_chain_survives_any_number_of_wakes() -> None:
    from servicescheduler.consumers.running.checkchain import CheckChain

    chain, now = CheckChain(0.01), 100.0
    assert chain.next_after(now, now + 1) == now + 1  # the running chain
    for _ in range(50):
        chain.woken(now + 0.5)  # 50 enables: 50 extra pending checks
    answers = []
    for _ in range(51):  # every pending check fires once, in due order
        chain.fired(now + 0.5)
        answers.append(chain.next_after(now + 0.5, now + 1.5))
    assert answers.count(None) == 50 and answers[-1] == now + 1.5  # one chain left


@pytest.mark.parametrize(
    "value,kind,fragment",
    [
        (b'{"id": "d", "type": "t", "data": ' + b"[" * 3000 + b"]" * 3000 + b"}", "json", "nested deeper"),
        (b'{"id": "d", "type": "t", "data": ' + b"[" * 65 + b"]" * 65 + b"}", "json", "nested deeper"),
        (b'{"id": "y", "type": "t", "occurred_at": "0001-01-01T00:00:00+01:00"}', "schema", "occurred_at"),
        (b'{"id": "y", "type": "t", "occurred_at": "9999-12-31T23:30:00-01:00"}', "schema", "occurred_at"),
        (b'{"id": "n\\u0000", "type": "t"}', "schema", "id: Value error, must not contain NUL"),
        (
            b'{"id": "n", "type": "t", "notify": {"channel": "log", "recipient": "\\u0000"}}',
            "schema",
            "notify.recipient",
        ),
        (b'{"id": "\\ud800", "type": "t"}', "json", "unpaired UTF-16 surrogate in id"),
        (b'{"id": "s", "type": "t", "data": {"\\udc00": 1}}', "json", "unpaired UTF-16 surrogate"),
        (b'{"id": "b", "type": "t", "data": {"n": 1e400}}', "json", "out of range"),
        (b'{"id": "b", "type": "t", "data": {"n": ' + b"9" * 5000 + b"}}", "json", "invalid JSON"),
    ],
)
def test_hostile_values_raise_bad_message_only(value: bytes, kind: str, fragment: str) -> None:
    with pytest.raises(BadMessage) as caught:
        decode(Record(value))
    assert (caught.value.kind, fragment in caught.value.reason) == (kind, True), caught.value.reason


def test_far_future_kafka_timestamp_is_a_reason_not_a_crash() -> None:
    with pytest.raises(BadMessage) as caught:
        decode(Record(b'{"id": "f", "type": "t"}', 10**16))
    assert caught.value.kind == "schema" and "Kafka timestamp" in caught.value.reason
    stated = decode(Record(b'{"id": "f", "type": "t", "occurred_at": "2025-01-01T00:00:00Z"}', 10**16))
    assert stated.occurred_at == datetime(2025, 1, 1, tzinfo=UTC)


def test_nul_in_data_and_nesting_within_the_limit_are_accepted() -> None:
    event = decode(
        Record(b'{"id": "n", "type": "t", "data": {"k": "a\\u0000b", "deep": ' + b"[" * 60 + b"]" * 60 + b"}}")
    )
    assert event.data["k"] == "a\x00b"
    assert decode_key(b"a\x00b") is None  # the key column is text


def test_dead_letter_reason_is_storable_text() -> None:
    from servicescheduler.consumers.decoding.deadletter import DeadRow, dead_letter_rows

    row = dead_letter_rows(
        [DeadRow("t", 0, 1, b"k" * 10_000, b"v" * 100, "store", "bad \x00 \ud800 " + "x" * 5000)], value_cap=10
    )[0]
    assert "\x00" not in row["error"] and len(row["error"]) <= 2000
    row["error"].encode("utf-8")  # no unpaired surrogate left
    assert (len(row["key"]), row["value"], row["value_truncated"]) == (4096, b"v" * 10, True)


class FakeWorker:
    """Stands in for ConsumerWorker: alive until `die()`."""

    def __init__(self) -> None:
        self.alive = False
        self.fatal_error: str | None = None
        self.stopped = False

    def start(self) -> None:
        self.alive = True

    def stop(self, timeout: float) -> bool:
        self.alive, self.stopped = False, True
        return True

    def is_alive(self) -> bool:
        return self.alive

    def running_handler(self):
        return None

    def die(self, error: str) -> None:
        self.alive, self.fatal_error = False, error

    def snapshot(self) -> WorkerSnapshot:
        return WorkerSnapshot(
            state=WorkerState.RUNNING if self.alive else WorkerState.FAILED,
            messages_processed=1,
            events_stored=1,
            last_error=self.fatal_error,
            broker_connected=True,
        )


class FakeStates:
    def __init__(self) -> None:
        self.changes: list[tuple[str, object]] = []

    def load(self) -> dict:
        return {}

    def create(self, states) -> None:
        self.changes.append(("create", states))

    def change(self, name, **kwargs) -> None:
        self.changes.append((name, kwargs))


def _supervisor(make_settings, **overrides):
    settings = make_settings(
        consumer_backoff_base_seconds=1,
        consumer_backoff_factor=2,
        consumer_backoff_cap_seconds=8,
        consumer_backoff_reset_seconds=60,
        consumer_crash_loop_restarts=5,
        consumer_crash_loop_window_seconds=300,
        consumer_ready_grace_seconds=10,
        **overrides,
    )
    workers: list[FakeWorker] = []

    def factory() -> FakeWorker:
        workers.append(FakeWorker())
        return workers[-1]

    clock = [1000.0]
    supervisor = ConsumerSupervisor(
        settings=settings,
        states=FakeStates(),
        metrics=Metrics(),
        worker_factory=factory,
        clock=lambda: clock[0],
        rng=random.Random(1),
    )
    supervisor.load_state()
    return supervisor, workers, clock


def test_supervisor_restarts_with_growing_jittered_delays_then_crash_loops(make_settings) -> None:
    supervisor, workers, clock = _supervisor(make_settings)
    assert supervisor.check(clock[0]) == clock[0] + 1  # first check starts the worker
    delays = []
    for _ in range(6):
        workers[-1].die("KafkaTimeoutError: Unable to bootstrap")
        due = supervisor.check(clock[0])
        delays.append(due - clock[0])
        assert supervisor.status()["state"] in ("backoff", "crash_looping")
        assert supervisor.check(clock[0]) == due  # nothing happens before the restart time
        clock[0] = due
        supervisor.check(clock[0])  # restarts
    assert all(0 <= d <= min(8, 2**i) for i, d in enumerate(delays[:4]))
    assert delays[4] == delays[5] == 8  # crash looping: retries at the cap
    status = supervisor.status()
    assert status["state"] == "crash_looping" and status["restarts"] == 6
    assert status["last_error"].startswith("KafkaTimeoutError")
    assert supervisor.metrics.consumer_restarts._value.get() == 6
    assert len(workers) == 7


def test_supervisor_resets_backoff_after_healthy_running(make_settings) -> None:
    supervisor, workers, clock = _supervisor(make_settings)
    supervisor.check(clock[0])
    for _ in range(3):  # attempts 0..2 -> ceilings 1, 2, 4
        workers[-1].die("boom")
        clock[0] = supervisor.check(clock[0])
        supervisor.check(clock[0])
    supervisor.check(clock[0])  # observed running
    clock[0] += 61
    supervisor.check(clock[0])  # healthy for longer than the reset window
    assert supervisor.status()["state"] == "running"
    workers[-1].die("boom")
    assert supervisor.check(clock[0]) - clock[0] <= 1  # back to attempt 0


def test_readiness_grace_and_disable(make_settings) -> None:
    supervisor, workers, clock = _supervisor(make_settings)
    supervisor.check(clock[0])
    supervisor.check(clock[0])
    assert supervisor.readiness() == (True, "ok")
    workers[-1].die("boom")
    supervisor.check(clock[0])
    clock[0] += 5
    assert supervisor.readiness()[0] is True  # within the grace
    clock[0] += 6
    ok, reason = supervisor.readiness()
    assert not ok and "boom" in reason
    status = supervisor.set_enabled(False, actor="admin")
    assert status["state"] == "disabled" and status["enabled"] is False
    assert supervisor.readiness() == (True, "disabled")
    assert supervisor.check(clock[0]) is None
    assert status["messages_processed"] == 1  # the dead worker's counters are kept
    supervisor.set_enabled(True, actor="admin")
    assert workers[-1].alive and supervisor.states.changes[-1][1]["enabled"] is True


def test_a_worker_that_cannot_store_makes_the_consumer_db_unavailable_and_not_ready_at_once(make_settings) -> None:
    supervisor, workers, clock = _supervisor(make_settings)
    supervisor.check(clock[0])
    supervisor.check(clock[0])
    assert supervisor.readiness() == (True, "ok")
    worker = workers[-1]
    worker.snapshot = lambda: dataclasses.replace(
        FakeWorker.snapshot(worker),
        state=WorkerState.DB_UNAVAILABLE,
        db_error="OperationalError: database or disk is full",
        db_unavailable_since=clock[0] - 3,
    )
    # No grace and no wait for the next check: the worker's own snapshot is read.
    ok, reason = supervisor.readiness()
    assert not ok and reason == "consumer db_unavailable for 3 s: OperationalError: database or disk is full"
    status = supervisor.status()
    assert status["state"] == "db_unavailable"
    assert status["detail"] == "cannot store events for 3 s: OperationalError: database or disk is full"
    supervisor.check(clock[0])  # the worker still polls: no restart, no crash loop
    assert supervisor.status()["restarts"] == 0 and worker.alive
    worker.snapshot = lambda: FakeWorker.snapshot(worker)  # a store succeeded
    assert supervisor.readiness() == (True, "ok")
    assert supervisor.status()["state"] == "running" and "detail" not in supervisor.status()


def test_a_worker_behind_that_consumes_nothing_is_stalled_until_it_consumes_again(make_settings, caplog) -> None:
    supervisor, workers, clock = _supervisor(make_settings, kafka_stall_seconds=30)
    supervisor.check(clock[0])
    worker = workers[-1]
    consumed_at = [clock[0] - 3600.0]  # the topic was quiet for an hour, then a burst arrives

    def snapshot(lag: int) -> WorkerSnapshot:
        return dataclasses.replace(
            FakeWorker.snapshot(worker),
            lag={"orders:0": lag, "orders:1": 0},
            last_message_at=consumed_at[0],
            last_poll_at=clock[0] - 0.2,  # polls keep returning: the thread looks healthy
            started_at=clock[0] - 7200,
        )

    worker.snapshot = lambda: snapshot(5000)
    supervisor.check(clock[0])
    # Behind for the first time now: an hour-old last batch does not make it stalled at once.
    assert supervisor.status()["state"] == "running" and supervisor.readiness() == (True, "ok")
    clock[0] += 29
    supervisor.check(clock[0])
    assert supervisor.status()["state"] == "running"
    clock[0] += 2
    with caplog.at_level("ERROR"):
        supervisor.check(clock[0])
        supervisor.check(clock[0] + 1)  # one error line per stall, not one per check
    status = supervisor.status()
    assert status["state"] == "stalled" and status["restarts"] == 0 and worker.alive
    assert status["detail"] == (
        "nothing consumed for 32 s while 5000 messages behind (orders:0 5000); last poll returned 1.2 s ago"
    )
    ok, reason = supervisor.readiness()
    assert not ok and reason.startswith("consumer stalled: nothing consumed for 32 s")
    assert supervisor.metrics.consumer_up._value.get() == 0
    assert [r.getMessage() for r in caplog.records].count("consumer_stalled") == 1

    consumed_at[0] = clock[0]  # a batch is consumed; still behind, but moving
    supervisor.check(clock[0])
    assert supervisor.status()["state"] == "running" and supervisor.readiness() == (True, "ok")
    clock[0] += 31  # ...and stalls again later
    supervisor.check(clock[0])
    assert supervisor.status()["state"] == "stalled"
    worker.snapshot = lambda: snapshot(0)  # caught up: nothing to consume is not a stall
    supervisor.check(clock[0])
    assert supervisor.status()["state"] == "running"


def test_a_worker_paused_for_the_database_is_db_unavailable_not_stalled(make_settings) -> None:
    supervisor, workers, clock = _supervisor(make_settings, kafka_stall_seconds=5)
    supervisor.check(clock[0])
    worker = workers[-1]
    worker.snapshot = lambda: dataclasses.replace(
        FakeWorker.snapshot(worker),
        state=WorkerState.DB_UNAVAILABLE,
        lag={"orders:0": 900},
        last_message_at=clock[0] - 600,
        db_error="OperationalError: database is locked",
        db_unavailable_since=clock[0] - 60,
    )
    for _ in range(3):
        clock[0] += 10
        supervisor.check(clock[0])
    assert supervisor.status()["state"] == "db_unavailable"


def test_database_errors_are_classified_wrapped_or_raw() -> None:
    import sqlite3

    import psycopg
    from psycopg import errors as pg
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    from servicescheduler.consumers.storing.store import is_message_error, is_transient_db_error

    transient = [
        psycopg.OperationalError("server closed the connection"),
        pg.QueryCanceled("lock timeout"),
        sqlite3.OperationalError("database is locked"),
        OperationalError("x", {}, Exception("locked")),
    ]
    message = [
        pg.DataError("invalid byte sequence"),
        pg.UniqueViolation("dup"),
        sqlite3.IntegrityError("NOT NULL"),
        IntegrityError("x", {}, Exception("dup")),
        ValueError("Exceeds the limit (4300 digits)"),
    ]
    system = [
        pg.UndefinedTable("no events"),
        pg.InFailedSqlTransaction("aborted"),
        sqlite3.ProgrammingError("x"),
        ProgrammingError("x", {}, Exception("no such table")),
    ]
    assert all(is_transient_db_error(e) and not is_message_error(e) for e in transient)
    assert all(is_message_error(e) and not is_transient_db_error(e) for e in message)
    assert not any(is_message_error(e) or is_transient_db_error(e) for e in system)


def _record_batches(*specs: tuple[int, int]) -> bytes:
    """Record batches (v2) back to back: (compression type, number of records) each, offsets running on."""
    from kafka.record.default_records import DefaultRecordBatchBuilder

    data, offset = b"", 0
    for compression, count in specs:
        builder = DefaultRecordBatchBuilder(
            magic=2, compression_type=compression, is_transactional=False, producer_id=-1, producer_epoch=-1,
            base_sequence=-1, batch_size=1 << 20,
        )  # fmt: skip
        value = b'{"pad": "' + b"x" * 300 + b'"}'
        for i in range(count):
            builder.append(i, timestamp=1_700_000_000_000, key=None, value=value, headers=[])
        raw = bytearray(builder.build())
        raw[0:8] = offset.to_bytes(8, "big")  # base offset (outside the CRC)
        data, offset = data + bytes(raw), offset + count
    return data


def test_a_batch_that_cannot_be_decoded_is_one_undecodable_record_between_the_others(monkeypatch) -> None:
    from kafka import codec
    from kafka.record.memory_records import MemoryRecords
    from kafka.structs import TopicPartition

    from servicescheduler.consumers.clients.batches import GuardedPartitionRecords, UndecodableBatch
    from servicescheduler.consumers.decoding.intake import decode_batch

    tp = TopicPartition("t", 0)
    raw = _record_batches((0, 5), (3, 7), (0, 5))  # plain, lz4, plain
    monkeypatch.setattr(codec, "has_lz4", lambda: False)  # the consumer's lz4 library "is not installed"
    parsed = GuardedPartitionRecords(0, tp, MemoryRecords(raw), check_crcs=True)
    records = parsed.take(100)
    assert [r.offset for r in records] == [0, 1, 2, 3, 4, 11, 12, 13, 14, 15, 16]
    bad = records[5]
    assert isinstance(bad, UndecodableBatch) and (bad.first_offset, bad.offset, bad.offsets) == (5, 11, "5-11")
    assert "UnsupportedCodecError" in bad.reason and "lz4" in bad.reason
    assert parsed.next_fetch_offset == 17  # the next fetch starts after all three batches
    _, dead = decode_batch({tp: records}, max_bytes=1 << 20)
    # The plain values are not events (no id): dead letters of their own kind, one each.
    assert [(d.offset, d.kind) for d in dead if d.kind == "batch"] == [(5, "batch")]
    assert len(dead) == 11
    assert [d.reason for d in dead if d.kind == "batch"] == [
        "batch: record batch at offsets 5-11 could not be decoded: "
        "UnsupportedCodecError: Libraries for lz4 compression codec not found"
    ]
    # Fetching from inside the bad batch (a committed offset there) names the range from that offset.
    records = GuardedPartitionRecords(8, tp, MemoryRecords(raw), check_crcs=True).take(100)
    assert [(r.first_offset, r.offset) for r in records if isinstance(r, UndecodableBatch)] == [(8, 11)]


def test_a_batch_failing_its_crc_is_one_undecodable_record() -> None:
    from kafka.record.memory_records import MemoryRecords
    from kafka.structs import TopicPartition

    from servicescheduler.consumers.clients.batches import GuardedPartitionRecords, UndecodableBatch

    raw = bytearray(_record_batches((0, 3), (0, 4), (0, 3)))
    second = len(_record_batches((0, 3)))
    raw[second + 80] ^= 0xFF  # a byte of the second batch's records flipped: its CRC no longer matches
    records = GuardedPartitionRecords(0, TopicPartition("t", 0), MemoryRecords(bytes(raw)), check_crcs=True).take(100)
    assert [r.offset for r in records] == [0, 1, 2, 6, 7, 8, 9]
    assert isinstance(records[3], UndecodableBatch) and "CRC" in records[3].reason
    assert records[3].first_offset == 3


def test_lag_gauges_are_the_partitions_consumed_now(make_settings) -> None:
    supervisor, workers, clock = _supervisor(make_settings)
    supervisor.check(clock[0])
    supervisor.check(clock[0])
    worker = workers[-1]
    lags = {"t:0": 5, "t:1": 3}
    worker.snapshot = lambda: dataclasses.replace(FakeWorker.snapshot(worker), lag=dict(lags))

    def exported() -> dict[str, float]:
        supervisor.metrics.refresh()
        families = {m.name: m for m in supervisor.metrics.registry.collect()}
        return {s.labels["partition"]: s.value for s in families["consumer_lag"].samples}

    assert exported() == {"0": 5, "1": 3}
    del lags["t:0"]  # a rebalance moved partition 0 to another replica
    assert exported() == {"1": 3}
