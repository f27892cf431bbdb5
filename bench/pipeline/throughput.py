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
        import servicescheduler.consumers.running.worker  # noqa: F401
    except Exception as exc:  # not written yet, or broken
        return f"the product's consumer is not available ({type(exc).__name__}: {exc})"
    import importlib.util

    if importlib.util.find_spec("bench.pipeline_product") is None:
        return "consumers/worker.py exists, but its benchmark adapter (bench/pipeline_product.py) is not written yet"
    return None


def profile_findings(profiles: dict) -> list[str]:
    """One line per profile: the biggest parts of poll_once, from the cumulative profile table."""
    lines = []
    for name, prof in profiles.items():
        parents = ("poll_once (total)", "store_batch (one transaction)")
        parts = sorted(
            ((row[2], row[0].strip()) for row in prof["cumulative"] if row[0].strip() not in parents), reverse=True
        )
        lines.append(
            f"Top three costs ({name}): " + "; ".join(f"{label} {pct} %" for pct, label in parts[:3]) + " of poll_once."
        )
    return lines


def create_topic(prefix: str) -> str:
    """A new 3-partition topic on the bench broker; returns its name."""
    topic = f"{prefix}-{uuid.uuid4().hex[:6]}"
    _BROKER_ADMIN["create"]([topic], PARTITIONS)
    return topic


LAST_TOPICS: dict[str, tuple[str, int]] = {}  # label -> (topic, events): benchmark 9 reuses "clean"


def measure_throughput(quick: bool, bootstrap: str) -> dict:
    """Benchmark 7: raw loops and the product's consumer (SQLite, PostgreSQL) on the same topics."""
    count = EVENTS["quick" if quick else "full"]
    out: dict = {"events": count, "topics": {}, "notes": [], "profiles": {}}
    for label, malformed_every in (("clean", 0), ("1 % malformed", 100)):
        topic = create_topic("bench-clean" if not malformed_every else "bench-bad")
        produce_s = produce(bootstrap, topic, count, malformed_every)
        LAST_TOPICS[label] = (topic, count)
        entries = raw_rates(bootstrap, topic, count)
        reason = consumer_available()
        if reason is None:
            from bench.pipeline_product import product_rates, set_quick

            set_quick(quick)
            more = (lambda n, topic=topic: produce(bootstrap, topic, n)) if label == "clean" else None
            entries.update(
                product_rates(
                    bootstrap,
                    topic,
                    count,
                    produce_more=more,
                    base_rate=entries["raw kafka-python"].get("events_per_s"),
                )
            )
            for name, entry in entries.items():
                if entry.get("profile"):
                    out["profiles"][f"{name}, {label}"] = entry.pop("profile")
        else:
            for name in ("product → SQLite", "product → PostgreSQL"):
                entries[name] = {"events": None, "events_per_s": None, "note": "not run: " + reason[:120]}
        out["topics"][label] = entries
        out["notes"].append(f"{label}: {count} events produced in {produce_s:.2f} s (confluent-kafka, linger 5 ms).")
    out["analysis"] = profile_findings(out["profiles"])
    out["method"] = (
        f"{count} pre-produced ~300 B JSON events (product format) on 3 partitions of a Tansu broker "
        "(in-memory storage) on 127.0.0.1, clean and with 1 % malformed (invalid JSON / UTF-8 / "
        "schema in turn). Raw loops read by partition assignment, no group, no commit, `json.loads` "
        "only; rate = events / (last record − first record). The product's `ConsumerWorker` (fresh "
        "group, batches of up to 2000 (KAFKA_BATCH_SIZE): validate, store idempotently in one durable "
        "transaction, commit offsets) runs on its own thread as in the service; its rate = events after "
        "its first batch / (time the counters reached all events − time they showed the first batch), "
        "read from its published counters every 2 ms, so the consumer-group join (~3 s on Tansu with the "
        "6 s session timeout; --quick uses 2 s, ~1 s) is excluded. `storage alone` rows store the same "
        "events, decoded beforehand, with the product's `store_batch()` and no Kafka: the ceiling the "
        "database sets for the whole consumer. All consumers read the same topics in this run, "
        "one after another."
    )
    return out


_BROKER_ADMIN: dict = {}


def set_broker(broker) -> None:
    """Remembers the running TansuBroker (topic creation goes to its listener)."""
    _BROKER_ADMIN["create"] = broker.create_topics
