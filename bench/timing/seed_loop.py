"""The seed's scheduling loop, re-implemented faithfully for comparison.

A daemon thread runs `scheduler.run_pending(); time.sleep(5)` on a `schedule.Scheduler()`.
Jobs run in that loop thread, one after the other; `async def` jobs get a fresh event loop
per run. `schedule` computes the next run from the moment a run *ended*, so bodies drift.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import schedule

SEED_SLEEP_SECONDS = 5.0


def _run_async(func: Callable[[], Any]) -> None:
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(func())
    finally:
        loop.close()


class SeedLoop:
    """`schedule.Scheduler` driven by one daemon thread sleeping `sleep_seconds` between passes."""

    def __init__(self, sleep_seconds: float = SEED_SLEEP_SECONDS) -> None:
        self.scheduler = schedule.Scheduler()
        self.sleep_seconds = sleep_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.passes = 0

    def add(self, seconds: int, func: Callable[[schedule.Job], Any]) -> schedule.Job:
        """Runs `func(job)` every `seconds` s (the job is passed so bodies can read `next_run`)."""
        holder: dict[str, schedule.Job] = {}
        if asyncio.iscoroutinefunction(func):
            job = self.scheduler.every(seconds).seconds.do(lambda: _run_async(lambda: func(holder["job"])))
        else:
            job = self.scheduler.every(seconds).seconds.do(lambda: func(holder["job"]))
        holder["job"] = job
        return job

    def start(self) -> SeedLoop:
        """Starts the loop thread."""
        self._thread = threading.Thread(target=self._loop, name="seed-loop", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.scheduler.run_pending()
            self.passes += 1
            self._stop.wait(self.sleep_seconds)  # = time.sleep(5), but stoppable

    def stop(self, timeout: float = 10.0) -> None:
        """Stops the loop (after the job in progress, if any)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
