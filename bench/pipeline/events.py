"""The benchmark events (~300 B JSON in the product's format, clean or malformed) and the topics of the
bench's Tansu broker they are produced to (confluent-kafka, round-robin over 3 partitions)."""

from __future__ import annotations

import json
import time
import uuid

PARTITIONS = 3
EVENTS = {"full": 100_000, "quick": 10_000}


BAD_KINDS = ("json", "encoding", "schema")  # consumers.produce.bad_message kinds, round-robin


def make_event(i: int, malformed: bool = False) -> bytes:
    """One ~300 B JSON event in the product's format (consumers/events.py), or a malformed one
    (invalid JSON, invalid UTF-8 or a schema violation, in turn; never oversize)."""
    if malformed:
        import random

        from devtools.produce import bad_message

        return bad_message(BAD_KINDS[i % len(BAD_KINDS)], random.Random(i), max_bytes=1_048_576)
    body = {
        "id": f"bench-{uuid.uuid4().hex}",
        "type": "order.created",
        "occurred_at": "2026-01-01T00:00:00Z",
        "data": {
            "order": i,
            "customer": f"c-{i % 977}",
            "amount": i % 1000 + 0.5,
            "source": "bench",
            "note": "x" * 110,
        },
    }
    return json.dumps(body).encode()


NOTIFY_EVERY = 20  # the FastStream comparison's topic: 5 % of the events ask for a notification


def make_notify_event(i: int, malformed: bool = False) -> bytes:
    """`make_event`, with `notify` on every NOTIFY_EVERY-th event (i % 20 == 0; never a malformed one)."""
    if malformed or i % NOTIFY_EVERY:
        return make_event(i, malformed)
    body = json.loads(make_event(i))
    body["notify"] = {"channel": "log", "recipient": f"ops+{i % 7}@example.com"}
    return json.dumps(body).encode()


def produce(bootstrap: str, topic: str, count: int, malformed_every: int = 0, factory=make_event) -> float:
    """Produces `count` events round-robin over the partitions; returns the seconds it took."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all"})
    started = time.perf_counter()
    for i in range(count):
        bad = bool(malformed_every) and i % malformed_every == malformed_every - 1
        for _ in range(100):  # local queue full: serve callbacks and retry (bounded)
            try:
                producer.produce(topic, factory(i, bad), partition=i % PARTITIONS)
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(60)
    return time.perf_counter() - started


def create_topic(prefix: str) -> str:
    """A new 3-partition topic on the bench broker; returns its name."""
    topic = f"{prefix}-{uuid.uuid4().hex[:6]}"
    _BROKER_ADMIN["create"]([topic], PARTITIONS)
    return topic


LAST_TOPICS: dict[str, tuple[str, int]] = {}  # label -> (topic, events): benchmark 9 reuses "clean"


_BROKER_ADMIN: dict = {}


def set_broker(broker) -> None:
    """Remembers the running TansuBroker (topic creation goes to its listener)."""
    _BROKER_ADMIN["create"] = broker.create_topics
