"""StoreAhead: stores one batch on a helper thread while the worker polls and decodes the next.

Most of a batch's store is the database working (SQLite's C code, PostgreSQL's server): the
GIL is free meanwhile, so Kafka's fetch and the next batch's decoding run beside it. At most one
batch is in flight; its offsets are committed only after its transaction, as before.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from consumers.store import StoreResult


@dataclass
class InFlight:
    """A batch handed to the store thread."""

    records: dict[Any, list[Any]]  # {TopicPartition: [records]} as polled
    started: float  # time.perf_counter() at hand-over
    future: Future[StoreResult]


class StoreAhead:
    """One `kafka-store` thread and at most one batch in flight on it."""

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self._inflight: InFlight | None = None
        # True: store() runs in the caller's thread at submit (benchmark 7's profile uses it:
        # cProfile sees only the thread that enabled it).
        self.inline = False

    @property
    def pending(self) -> bool:
        """True while a batch was handed over and not yet taken back."""
        return self._inflight is not None

    def submit(self, records: dict[Any, list[Any]], store: Callable[[], StoreResult]) -> None:
        """Starts `store()` for `records` on the store thread (the previous batch must be taken)."""
        if self._inflight is not None:
            raise RuntimeError("a batch is already in flight")
        started = time.perf_counter()
        if self.inline:
            future: Future[StoreResult] = Future()
            try:
                future.set_result(store())
            except Exception as exc:
                future.set_exception(exc)
            self._inflight = InFlight(records, started, future)
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka-store")
        self._inflight = InFlight(records, started, self._executor.submit(store))

    def take(self) -> InFlight:
        """The batch in flight (its future may still run: `.future.result()` waits)."""
        inflight, self._inflight = self._inflight, None
        if inflight is None:
            raise RuntimeError("no batch in flight")
        return inflight

    def close(self) -> None:
        """Ends the store thread once its batch is done (call after taking it back)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)
