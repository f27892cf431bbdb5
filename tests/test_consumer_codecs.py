"""Compressed record batches from real producers, and batches a client cannot decode, on both clients.

librdkafka (confluent-kafka's Producer) really compresses with snappy, lz4, zstd and gzip;
kafka-python's producer with gzip. A batch the consumer cannot decode (its codec library made
unavailable, or a corrupt compressed payload) must cost ONE dead letter naming topic, partition,
offset range and reason: before, kafka-python's poll() raised on it for good and the partition,
including the plain events behind it, was stuck. Workers are driven with `poll_once()`, so an
exception escaping the worker fails the test.
"""

from __future__ import annotations

import json

import pytest
from kafka import KafkaProducer
from kafka import codec as kafka_codec
from kafka.record import default_records
from sqlalchemy import select

from servicescheduler.storage.models import DeadLetter, Event
from tests.conftest import wait_until
from tests.test_consumer_kafka import _committed, _count, _drain, _events

pytestmark = pytest.mark.kafka

CLIENTS = ("kafka-python", "confluent-kafka")
CODECS = ("snappy", "lz4", "zstd", "gzip")


def _send_librdkafka(bootstrap: str, topic: str, events: list[dict], compression: str, partition: int = 0) -> None:
    """Sends `events` as compressed batches from a librdkafka producer, one partition, then flushes."""
    from confluent_kafka import Producer

    producer = Producer(
        {"bootstrap.servers": bootstrap, "compression.type": compression, "linger.ms": 50, "acks": "all"}
    )
    for event in events:
        producer.produce(topic, value=json.dumps(event).encode(), key=event["id"].encode(), partition=partition)
    assert producer.flush(30) == 0


def _send_kafka_python(bootstrap: str, topic: str, events: list[dict], compression: str | None) -> None:
    producer = KafkaProducer(bootstrap_servers=[bootstrap], acks="all", linger_ms=50, compression_type=compression)
    try:
        for event in events:
            producer.send(topic, value=json.dumps(event).encode(), key=event["id"].encode(), partition=0)
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=5)


def _dead_letters(database) -> list[DeadLetter]:
    with database.read_session() as session:
        return list(session.scalars(select(DeadLetter).order_by(DeadLetter.offset)))


def _codecs_seen(monkeypatch) -> set[int]:
    """Records every compression type kafka-python decodes (proof the batches were compressed)."""
    from kafka.record.default_records import DefaultRecordBatch

    seen: set[int] = set()
    check = DefaultRecordBatch._assert_has_codec

    def spy(self, compression_type):
        seen.add(compression_type)
        return check(self, compression_type)

    monkeypatch.setattr(DefaultRecordBatch, "_assert_has_codec", spy)
    return seen


@pytest.mark.parametrize("client", CLIENTS)
def test_every_codec_from_librdkafka_and_kafka_python_is_stored(
    kafka, kafka_topic, kafka_group, kafka_settings, open_worker, client, monkeypatch
) -> None:
    seen = _codecs_seen(monkeypatch)
    expected = 0
    for codec in CODECS:
        _send_librdkafka(kafka.bootstrap, kafka_topic, _events(70, f"{codec}-"), codec)
        expected += 70
    _send_kafka_python(kafka.bootstrap, kafka_topic, _events(70, "kp-gzip-"), "gzip")
    _send_kafka_python(kafka.bootstrap, kafka_topic, _events(70, "plain-"), None)
    expected += 140
    worker = open_worker(kafka_settings(kafka_client=client))
    _drain(worker, expected)
    database = worker.database
    assert _count(database, Event) == expected
    assert _dead_letters(database) == []
    if client == "kafka-python":  # gzip 1, snappy 2, lz4 3, zstd 4: every batch really compressed
        assert seen == {1, 2, 3, 4}
    worker.poll_once()  # commits whatever the drain left pending
    assert _committed(kafka.bootstrap, kafka_group, kafka_topic)[0] == expected


def test_a_batch_whose_codec_is_missing_is_one_dead_letter_and_the_partition_flows_on(
    kafka, kafka_topic, kafka_group, kafka_settings, kafka_producer, open_worker, monkeypatch
) -> None:
    # The lz4 library "is not installed" for the consumer (the producer is librdkafka's own).
    monkeypatch.setattr(kafka_codec, "has_lz4", lambda: False)
    _send_kafka_python(kafka.bootstrap, kafka_topic, _events(20, "before-"), None)
    _send_librdkafka(kafka.bootstrap, kafka_topic, _events(30, "lz4-"), "lz4")
    _send_kafka_python(kafka.bootstrap, kafka_topic, _events(20, "after-"), None)
    worker = open_worker(kafka_settings())
    database = worker.database

    def caught_up() -> bool:
        worker.poll_once()
        return _count(database, Event) == 40 and _committed(kafka.bootstrap, kafka_group, kafka_topic)[0] == 70

    wait_until(caught_up, timeout=30)
    dead = _dead_letters(database)
    # librdkafka may split the 30 events into several batches: each is one entry, together 20..49.
    assert 1 <= len(dead) <= 30
    covered: list[int] = []
    for letter in dead:
        assert (letter.topic, letter.partition) == (kafka_topic, 0)
        assert letter.error.startswith("batch: record batch at offsets ")
        assert "UnsupportedCodecError" in letter.error and "lz4" in letter.error
        span = letter.error.removeprefix("batch: record batch at offsets ").split(" ")[0]
        first, _, last = span.partition("-")
        assert int(first) == letter.offset
        covered.extend(range(int(first), int(last or first) + 1))
    assert covered == list(range(20, 50))
    with database.read_session() as session:
        ids = set(session.scalars(select(Event.id)))
    assert ids == {f"before-{i}" for i in range(20)} | {f"after-{i}" for i in range(20)}
    snapshot = worker.snapshot()
    assert snapshot.dead_lettered == len(dead) and snapshot.fatal_error is None


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("events_after", [10, 0], ids=["events-after", "last-batch"])
def test_a_corrupt_compressed_batch_is_one_dead_letter_on_both_clients(
    kafka, kafka_topic, kafka_group, kafka_settings, open_worker, client, events_after, monkeypatch
) -> None:
    _send_kafka_python(kafka.bootstrap, kafka_topic, _events(10, "before-"), None)
    with monkeypatch.context() as patch:  # the producer "compresses" into bytes no lz4 decoder accepts
        patch.setattr(default_records, "lz4_encode", lambda data: b"\x00not an lz4 frame")
        _send_kafka_python(kafka.bootstrap, kafka_topic, _events(10, "corrupt-"), "lz4")
    if events_after:
        _send_kafka_python(kafka.bootstrap, kafka_topic, _events(events_after, "after-"), None)
    worker = open_worker(kafka_settings(kafka_client=client))
    database = worker.database

    def caught_up() -> bool:
        worker.poll_once()
        committed = _committed(kafka.bootstrap, kafka_group, kafka_topic)[0] or 0
        return _count(database, Event) == 10 + events_after and committed == 20 + events_after

    wait_until(caught_up, timeout=30)
    dead = _dead_letters(database)
    assert len(dead) == 1, [d.error for d in dead]
    assert (dead[0].topic, dead[0].partition, dead[0].offset) == (kafka_topic, 0, 10)
    assert dead[0].error.startswith("batch: record batch at offsets 10")
    assert worker.snapshot().fatal_error is None
