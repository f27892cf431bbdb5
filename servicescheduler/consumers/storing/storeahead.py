"""StoreAhead: stores one batch on the `kafka-store` thread while the consumer polls the next.

Why: the database's share of a batch (SQLite's C code and fsync, PostgreSQL's round trips) runs
without the GIL, so Kafka's fetch and the next batch's decoding can overlap it instead of waiting
for it. Measured inline, fetch + decode and storing took turns on one core.

What keeps at-least-once intact: at most one batch is in flight; its offsets are committed only
after `take()` returned its stored result, by the consumer thread (the only one touching the
Kafka client); a batch that failed is handed back with its records so they can be rewound. The
thread is a daemon: a handler that hangs holds it, as it held the consumer thread before, and
the consumer thread waiting in `take()` shows up `stuck` through HandlerWatch all the same.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from servicescheduler.consumers.storing.store import DeadRow, Prepared, StoreResult

Store = Callable[[list[Prepared], list[DeadRow]], StoreResult]


@dataclass
class Stored:
    """A batch that left the store thread: its result, or the exception that stored nothing."""

    records: dict[Any, list[Any]]  # the poll result, {TopicPartition: [records]}
    prepared: list[Prepared]
    dead: list[DeadRow]
    result: StoreResult | None = None
    error: Exception | None = None
    seconds: float = 0.0
    done: threading.Event = field(default_factory=threading.Event)


class StoreAhead:
    """One batch in flight at most, stored by `store` on a thread of its own."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._jobs: queue.SimpleQueue[Stored | None] = queue.SimpleQueue()
        self._in_flight: Stored | None = None
        self._thread: threading.Thread | None = None

    @property
    def busy(self) -> bool:
        """True while a batch is submitted and not yet taken."""
        return self._in_flight is not None

    def submit(self, records: dict[Any, list[Any]], prepared: list[Prepared], dead: list[DeadRow]) -> None:
        """Starts storing a decoded batch; the previous one must have been taken."""
        if self._in_flight is not None:
            raise RuntimeError("submit() with a batch still in flight: take() it first")
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="kafka-store", daemon=True)
            self._thread.start()
        self._in_flight = Stored(records, prepared, dead)
        self._jobs.put(self._in_flight)

    def take(self) -> Stored | None:
        """Waits for the batch in flight and hands it back (None when there is none)."""
        job, self._in_flight = self._in_flight, None
        if job is not None:
            job.done.wait()
        return job

    def close(self) -> None:
        """Ends the thread once the batch in flight is taken (call take() first)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._jobs.put(None)
            thread.join()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            started = time.perf_counter()
            try:
                job.result = self._store(job.prepared, job.dead)
            except Exception as exc:  # handed to the consumer thread, which decides
                job.error = exc
            finally:
                job.seconds = time.perf_counter() - started
                job.done.set()
