"""Consumer throughput over the last minutes: the supervisor's counters sampled every few seconds.

`ThroughputSampler` is a supervised component (the scheduler loop calls `check` when it is due),
so samples are taken whether or not anyone is looking, at the cost of one status read per period.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

SAMPLE_SECONDS = 5.0
KEEP_SAMPLES = 72  # six minutes at 5 s: one more than the windows shown


class ThroughputSampler:
    """Keeps (time, messages processed, events stored) samples; answers rates per interval."""

    name = "consumer-throughput"

    def __init__(
        self, read_counters: Callable[[], dict[str, Any]], period: float | None = None, keep: int = KEEP_SAMPLES
    ) -> None:
        self._read = read_counters
        self.period = SAMPLE_SECONDS if period is None else period  # read at build time: tests shorten it
        self._samples: deque[tuple[float, int, int]] = deque(maxlen=keep)
        self._lock = threading.Lock()

    def start(self) -> None:
        """Nothing to start: sampling happens in check()."""

    def stop(self, timeout: float) -> None:
        """Nothing to stop."""

    def check(self, now: float) -> float:
        """Takes one sample; returns when the next one is due."""
        counters = self._read()
        with self._lock:
            self._samples.append((now, int(counters["messages_processed"]), int(counters["events_stored"])))
        return now + self.period

    def rates(self) -> dict[str, Any]:
        """Per interval between consecutive samples: messages and events per second (API view)."""
        with self._lock:
            samples = list(self._samples)
        points = []
        for (t0, m0, e0), (t1, m1, e1) in zip(samples, samples[1:], strict=False):
            span = t1 - t0
            if span <= 0:
                continue
            # Totals dip for a moment while a stopped worker's counts are folded in: clamp at 0.
            points.append(
                {
                    "at": _iso(t1),
                    "seconds": round(span, 3),
                    "messages_per_second": round(max(0, m1 - m0) / span, 2),
                    "events_per_second": round(max(0, e1 - e0) / span, 2),
                }
            )
        return {"sample_seconds": self.period, "points": points}


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")
