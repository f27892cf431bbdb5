"""Benchmarks 7 (consumer throughput) and 8 (event-to-notification latency).

One Tansu broker (devtools.tansu) on 127.0.0.1 for the whole run. Events (~300 B JSON) are
pre-produced with confluent-kafka to 3-partition topics, clean and with 1 % malformed. The raw
kafka-python and confluent-kafka loops read the same topics in the same run; the product's
consumer (consumers.worker, when present) stores them idempotently in SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import time
import uuid

from bench.baselines.raw_consumers import confluent_loop, kafka_python_loop

PARTITIONS = 3
EVENTS = {"full": 100_000, "quick": 10_000}


def make_event(i: int, malformed: bool = False) -> bytes:
    """One ~300 B JSON event (or a truncated, malformed one)."""
    body = {"event_id": f"bench-{uuid.uuid4().hex}", "type": "order.created", "source": "bench",
            "occurred_at": "2026-01-01T00:00:00Z",
            "payload": {"order": i, "customer": f"c-{i % 977}", "amount": i % 1000 + 0.5,
                        "note": "x" * 120}}
    raw = json.dumps(body).encode()
    return raw[: len(raw) // 2] if malformed else raw


def produce(bootstrap: str, topic: str, count: int, malformed_every: int = 0,
            factory=make_event) -> float:
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


def raw_rates(bootstrap: str, topic: str, count: int) -> dict:
    """events/s of the raw kafka-python and confluent-kafka loops on `topic`."""
    out = {}
    for name, loop in (("raw kafka-python", kafka_python_loop), ("raw confluent-kafka", confluent_loop)):
        result = loop(bootstrap, topic, PARTITIONS, count, timeout=max(60, count / 2000))
        seconds = result["seconds"]
        out[name] = {**result, "events_per_s": round(result["events"] / seconds) if seconds else None}
    return out


def consumer_available() -> str | None:
    """None when the product's consumer (consumers/worker.py) can be imported, else why not."""
    try:
        import consumers.worker  # noqa: F401
    except Exception as exc:  # not written yet, or broken
        return f"the product's consumer is not available ({type(exc).__name__}: {exc})"
    import importlib.util

    if importlib.util.find_spec("bench.pipeline_product") is None:
        return "consumers/worker.py exists, but its benchmark adapter (bench/pipeline_product.py) is not written yet"
    return None


def measure_throughput(quick: bool, bootstrap: str) -> dict:
    """Benchmark 7: raw loops (and the product's consumer, when present) on the same topics."""
    from devtools.tansu import TansuBroker  # noqa: F401  (the broker is started by the caller)

    count = EVENTS["quick" if quick else "full"]
    topics = {"clean": (f"bench-clean-{uuid.uuid4().hex[:6]}", 0),
              "1 % malformed": (f"bench-bad-{uuid.uuid4().hex[:6]}", 100)}
    out: dict = {"events": count, "topics": {}, "notes": []}
    for label, (topic, malformed_every) in topics.items():
        _BROKER_ADMIN["create"]([topic], PARTITIONS)
        produce_s = produce(bootstrap, topic, count, malformed_every)
        entries = raw_rates(bootstrap, topic, count)
        reason = consumer_available()
        if reason is None:
            from bench.pipeline_product import product_rates

            entries.update(product_rates(quick, bootstrap, topic, count))
        else:
            for name in ("product → SQLite", "product → PostgreSQL"):
                entries[name] = {"events": None, "events_per_s": None, "note": "not run: " + reason[:120]}
        out["topics"][label] = entries
        out["notes"].append(f"{label}: {count} events produced in {produce_s:.2f} s (confluent-kafka).")
    out["method"] = (f"{count} pre-produced ~300 B JSON events on 3 partitions of a Tansu broker (in-memory "
                     "storage) on 127.0.0.1. Raw loops read by partition assignment, no group, no commit; rate = "
                     "events / (last record − first record). All consumers read the same topics in this run.")
    return out


_BROKER_ADMIN: dict = {}


def set_broker(broker) -> None:
    """Remembers the running TansuBroker (topic creation goes to its listener)."""
    _BROKER_ADMIN["create"] = broker.create_topics
