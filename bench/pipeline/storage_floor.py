"""Benchmark 7's storage-alone rows: what the product's store stage can do without Kafka.

The same ~300 B events the topic holds are decoded first (untimed) and then stored by the
product's own `store_batch()` (handlers, idempotent bulk insert, one durable transaction per
batch of 2000), into a fresh SQLite file or PostgreSQL database. No fetch and no decode are
timed, so the rate is a ceiling for the whole consumer on this machine: the consumer cannot
store faster than its storage stage alone.
"""

from __future__ import annotations

import time
from collections import namedtuple

from bench.common import open_database
from bench.pipeline.consumer import consumer_settings, fresh_database
from bench.pipeline.events import make_event

BATCH = 2000
_Record = namedtuple("_Record", "topic partition offset timestamp key value headers")


def measure(backend: str, count: int) -> dict:
    """{'events', 'events_per_s', 'note'} for `count` events stored in batches of BATCH."""
    from kafka.structs import TopicPartition

    from servicescheduler.consumers.running.worker import ConsumerWorker
    from servicescheduler.consumers.storing.store import store_batch

    with fresh_database(backend) as (url, tmp):
        settings = consumer_settings(tmp, url, "127.0.0.1:9", "unused")
        database = open_database(settings)
        worker = ConsumerWorker(settings=settings, database=database)
        tp = TopicPartition("floor", 0)
        batches = []
        for start in range(0, count, BATCH):
            records = [
                _Record("floor", 0, i, 0, None, make_event(i), []) for i in range(start, min(count, start + BATCH))
            ]
            batches.append(worker._decode({tp: records}))  # untimed: the stage measured is storing
        stored = 0
        started = time.perf_counter()
        for prepared, dead in batches:
            result = store_batch(
                database,
                prepared=prepared,
                dead=dead,
                registry=worker.watch,
                max_attempts=settings.kafka_max_attempts,
                value_cap=settings.kafka_dead_letter_value_cap_bytes,
            )
            stored += result.events_stored
        seconds = time.perf_counter() - started
        database.dispose()
    return {
        "events": count,
        "stored": stored,
        "events_per_s": round(count / seconds) if seconds > 0 else None,
        "note": f"no Kafka, no decode: store_batch alone, {count // BATCH} batches of {BATCH}; stored {stored}",
    }
