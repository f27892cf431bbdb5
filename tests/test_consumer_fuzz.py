"""Property tests: arbitrary bytes and hostile JSON through the real decode → store path.

On SQLite AND PostgreSQL every message ends up stored (or a duplicate of a stored id) or
dead-lettered, exactly once, and nothing escapes the worker (an exception there is what killed
and restarted the consumer). One more run goes end to end through the real broker.
"""

from __future__ import annotations

import itertools
import json
import uuid
from datetime import timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka.consumer.fetcher import ConsumerRecord
from kafka.structs import TopicPartition
from sqlalchemy import select

from servicescheduler.consumers.running.worker import ConsumerWorker
from servicescheduler.storage.models import DeadLetter, Event
from tests.conftest import wait_until

MAX_BYTES = 8192
HOSTILE_TEXT = ["\x00", "a\x00b", "\ud800", "x\udfff", "\udc00\ud800", "k" * 300, "", " ", "é", "\u2028"]
HOSTILE_DATES = [
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-23:59",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999Z",
    "2025-02-30T00:00:00Z",
    "yesterday",
    "",
    "1e400",
]
HOSTILE_NUMBERS = [b"1e400", b"-1e400", b"9" * 5000, b"NaN", b"Infinity", b"1e-400", b"-0", b"18446744073709551616"]

text = st.one_of(st.text(max_size=12), st.sampled_from(HOSTILE_TEXT))
offsets = st.builds(
    timezone, st.timedeltas(min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59))
)
dates = st.one_of(
    st.sampled_from(HOSTILE_DATES),
    st.builds(lambda dt, tz: dt.replace(tzinfo=tz).isoformat(), st.datetimes(), offsets),
    st.integers(min_value=-(2**70), max_value=2**70),
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10**40), max_value=10**40), st.floats(), text)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(text, inner, max_size=3)),
    max_leaves=12,
)
notify = st.one_of(
    st.fixed_dictionaries({"channel": st.sampled_from(["log", "webhook", "sms"]), "recipient": text}), json_values
)
events = st.fixed_dictionaries(
    {"id": text, "type": text}, optional={"occurred_at": dates, "data": json_values, "notify": notify, "x": json_values}
)


def _encode(payload: dict, ascii_only: bool) -> bytes:
    """JSON of `payload`; non-ASCII mode keeps surrogates as (invalid) UTF-8 bytes, as a broken producer would."""
    if ascii_only:
        return json.dumps(payload).encode()
    return json.dumps(payload, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _spliced(number: bytes, depth: int) -> bytes:
    return b'{"id": "n", "type": "t", "data": {"v": ' + b"[" * depth + number + b"]" * depth + b"}}"


values = st.one_of(
    st.binary(max_size=200),
    st.builds(_encode, events, st.booleans()),
    st.builds(_spliced, st.sampled_from(HOSTILE_NUMBERS), st.integers(min_value=0, max_value=3000)),
    st.builds(lambda n: b"x" * n, st.integers(min_value=MAX_BYTES - 2, max_value=MAX_BYTES + 2)),
)
keys = st.one_of(st.none(), st.binary(max_size=40), st.just(b"k" * 20_000), st.just(b"\x00"))
headers = st.lists(
    st.tuples(st.text(max_size=8), st.one_of(st.binary(max_size=20), st.just(b"h" * 50_000))), max_size=2
)
timestamps = st.one_of(st.just(1_800_000_000_000), st.integers(min_value=-1, max_value=2**63 - 1))
messages = st.lists(st.tuples(values, keys, headers, timestamps), min_size=1, max_size=12)

_offsets = itertools.count()


def _records(batch: list[tuple], prefix: str) -> dict:
    """A poll result of realistic ConsumerRecords on one partition; valid ids made unique per example."""
    tp = TopicPartition("fuzz", 0)
    out = []
    for value, key, header_list, timestamp in batch:
        offset = next(_offsets)
        out.append(
            ConsumerRecord(
                "fuzz",
                0,
                -1,
                offset,
                timestamp,
                0,
                key,
                _unique(value, prefix),
                header_list,
                None,
                len(key or b""),
                len(value),
                sum(len(v) for _, v in header_list),
            )
        )
    return {tp: out}


def _unique(value: bytes, prefix: str) -> bytes:
    """Prefixes a plain string id so that examples never share ids (replays are tested elsewhere)."""
    if value.startswith(b'{"id": "'):
        return b'{"id": "' + prefix.encode() + value[len(b'{"id": "') :]
    return value


def _check_exactly_once(worker: ConsumerWorker, records: dict) -> None:
    result = worker.process(records)  # must not raise, whatever the bytes
    batch = next(iter(records.values()))
    offsets = {r.offset for r in batch}
    with worker.database.read_session() as session:
        dead = list(session.scalars(select(DeadLetter.offset).where(DeadLetter.offset.in_(offsets))))
        stored = list(session.scalars(select(Event.offset).where(Event.offset.in_(offsets))))
    assert len(dead) == len(set(dead)) == len(result.dead)
    assert not set(dead) & set(stored)
    assert len(stored) == result.events_stored
    assert result.events_stored + result.duplicates + len(result.dead) == len(batch)


@pytest.fixture
def fuzz_worker(database_url, make_settings, migrated):
    database = migrated(database_url)
    settings = make_settings(database_url=database_url, kafka_max_message_bytes=MAX_BYTES)
    return ConsumerWorker(settings=settings, database=database)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(batch=messages)
def test_every_message_is_stored_or_dead_lettered_exactly_once(fuzz_worker, batch) -> None:
    _check_exactly_once(fuzz_worker, _records(batch, f"{uuid.uuid4().hex[:8]}-"))


@pytest.mark.slow  # over 8 s (--durations): examples through the broker
@pytest.mark.kafka
@pytest.mark.timeout(120)
@settings(
    max_examples=2,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(batch=st.lists(st.tuples(values, keys, headers), min_size=20, max_size=40))
def test_fuzzed_stream_through_the_broker_never_restarts_the_consumer(kafka, kafka_settings, live_app, batch) -> None:
    from kafka import KafkaProducer

    from servicescheduler.scheduling.registry import TaskRegistry

    topic = kafka.create_topic(partitions=1)
    app = live_app(
        kafka_settings(
            kafka_topics=topic, kafka_group_id=f"g-{uuid.uuid4().hex[:10]}", kafka_max_message_bytes=MAX_BYTES
        ),
        TaskRegistry(),
    )
    producer = KafkaProducer(bootstrap_servers=[kafka.bootstrap], acks="all", max_request_size=4_000_000)
    try:
        for value, key, header_list in batch:
            producer.send(topic, value=value, key=key, headers=header_list)
        producer.send(topic, value=json.dumps({"id": f"last-{uuid.uuid4().hex}", "type": "t"}).encode())
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=5)
    body = wait_until(
        lambda: (s := app.client.get("/consumer").json())["messages_processed"] == len(batch) + 1 and s, timeout=60
    )
    assert body["restarts"] == 0 and body["state"] == "running", body
    assert body["events_stored"] + body["duplicates_skipped"] + body["dead_lettered"] == len(batch) + 1
    app.stop()
