"""Retries: when a failed run (`error` or `timeout`) is attempted again, and what a pending one is.

Attempt 1 is the run itself; a task declared with `retries=N` gets up to N more attempts. The
delay before attempt `a` (a >= 2), after the previous attempt ended, is

    min(RETRY_DELAY_CAP_SECONDS, retry_backoff * 2 ** (a - 2) * jitter),   jitter in [0.5, 1]

so 3 retries with `retry_backoff=10` wait about 5-10 s, 10-20 s, 20-40 s. The jitter spreads the
retries of tasks that failed together (one database outage) instead of sending them back at
once; it is derived from the failed run's id rather than drawn, so a delay can be reproduced
from the run history. A pending retry waits in the memory of the replica that ran the failed
attempt and is stored with that attempt's end (ss_task_state, storage/history.py): a restart,
or another replica once that one is dead, plans it again (Scheduler.recover_orphaned_retries).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from servicescheduler.support.clock import iso

# No retry waits longer than this: a task that failed should not stay silent for a day.
RETRY_DELAY_CAP_SECONDS = 3600.0


def retry_delay(attempt: int, backoff: float, jitter: float, cap: float = RETRY_DELAY_CAP_SECONDS) -> float:
    """Seconds between the end of attempt `attempt - 1` and the start of attempt `attempt` (>= 2)."""
    if attempt < 2:
        raise ValueError(f"attempt {attempt} is not a retry (attempt 1 is the run itself)")
    if not 0.5 <= jitter <= 1.0:
        raise ValueError(f"jitter must be within [0.5, 1], got {jitter}")
    # min() before multiplying out: 2 ** 1000 is fine for an int, not for a float.
    exponent = min(attempt - 2, 64)
    return min(cap, backoff * float(2**exponent) * jitter)


def jitter_for(run_id: str) -> float:
    """A fraction in [0.5, 1] derived from `run_id`: spread, yet reproducible."""
    return 0.5 + (zlib.crc32(run_id.encode()) % 10_001) / 20_000


@dataclass(frozen=True)
class PendingRetry:
    """The next attempt of a task, waiting for its due time in the scheduler's agenda."""

    attempt: int  # 2 for the first retry
    due: float  # epoch seconds; also the slot the attempt claims in a cluster
    token: str  # names this pending retry's agenda item: a superseded item is ignored

    def as_dict(self) -> dict[str, object]:
        """The API's `pending_retry`."""
        return {"attempt": self.attempt, "due": iso(self.due)}
