"""Benchmark 7's storage-alone rows: what the product's store stage can do without Kafka.

The same ~300 B events the topic holds are decoded first (untimed) and then stored by the
product's own `store_batch()` (handlers, idempotent bulk insert, one durable transaction per
batch of 2000), into a fresh SQLite file or PostgreSQL database. No fetch and no decode are
timed, so the rate is a ceiling for the whole consumer on this machine: the consumer cannot
store faster than its storage stage alone.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import namedtuple

from bench.common import open_database
from bench.pipeline.consumer import consumer_settings, fresh_database
from bench.pipeline.events import make_event

BATCH = 2000
_Record = namedtuple("_Record", "topic partition offset timestamp key value headers")


def mixed(backend: str, count: int) -> dict:
    """The FastStream comparison's mix: 1 % malformed, 5 % with `notify` (notifications, dead letters)."""
    from bench.pipeline.events import make_notify_event

    # One warning line per malformed message on stdout: part of the decode (untimed), not shown.
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        return measure(backend, count, make_notify_event, 100)


def measure(backend: str, count: int, factory=make_event, malformed_every: int = 0) -> dict:
    """{'events', 'events_per_s', 'note'} for `count` events (`factory(i, malformed)`, every
    `malformed_every`-th malformed) stored in batches of BATCH."""
    from kafka.structs import TopicPartition

    from servicescheduler.consumers.running.worker import ConsumerWorker
    from servicescheduler.consumers.storing.store import store_batch

    with fresh_database(backend) as (url, tmp):
        settings = consumer_settings(tmp, url, "127.0.0.1:9", "unused")
        database = open_database(settings)
        worker = ConsumerWorker(settings=settings, database=database)
        tp = TopicPartition("floor", 0)

        def _bad(i: int) -> bool:
            return bool(malformed_every) and i % malformed_every == malformed_every - 1

        batches = []
        for start in range(0, count, BATCH):
            stop = min(count, start + BATCH)
            records = [_Record("floor", 0, i, 0, None, factory(i, _bad(i)), []) for i in range(start, stop)]
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
