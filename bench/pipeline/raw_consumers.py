"""Raw consume loops: the fastest a Python service could go with each client (no storage).

kafka-python: `poll(max_records=500)` and `json.loads` per record. confluent-kafka:
`consume(500)` and `json.loads`. Both read an assigned topic from the beginning, without a
consumer group, and stop when `expected` records were seen or the deadline passed.
"""

from __future__ import annotations

import json
import time


def _loads(value: bytes) -> object:
    try:
        return json.loads(value)
    except ValueError:
        return None


def kafka_python_loop(bootstrap: str, topic: str, partitions: int, expected: int, timeout: float) -> dict:
    """Consumes `expected` records with kafka-python; returns count and first-to-last seconds."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest", group_id=None
    )
    parts = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    count, first, last = 0, None, None
    deadline = time.monotonic() + timeout
    try:
        while count < expected and time.monotonic() < deadline:
            batches = consumer.poll(timeout_ms=500, max_records=500)
            for records in batches.values():
                first = first or time.monotonic()
                for record in records:
                    _loads(record.value)
                count += len(records)
            if batches:
                last = time.monotonic()
    finally:
        consumer.close()
    return {"events": count, "seconds": None if first is None else last - first}


def confluent_loop(bootstrap: str, topic: str, partitions: int, expected: int, timeout: float) -> dict:
    """Consumes `expected` records with confluent-kafka; returns count and first-to-last seconds."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "bench-raw-confluent",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    count, first, last = 0, None, None
    deadline = time.monotonic() + timeout
    try:
        while count < expected and time.monotonic() < deadline:
            messages = consumer.consume(num_messages=500, timeout=0.5)
            for message in messages:
                if message.error():
                    continue
                first = first or time.monotonic()
                _loads(message.value())
                count += 1
            if messages:
                last = time.monotonic()
    finally:
        consumer.close()
    return {"events": count, "seconds": None if first is None else last - first}
