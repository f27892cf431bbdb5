"""StallWatch: a consumer that is alive and behind, but consumes nothing, is `stalled`.

The handler watch (storing/watchdog.py) sees a handler that hangs and the database checks see a
store that fails; neither sees a worker whose thread is alive and healthy-looking while nothing
moves: a fetch that keeps returning no records although the partitions are behind, a client
wedged inside poll(), a store that never returns. A soak under heavy load met exactly that
(docs/reliability.md): 40-90 s without a stored event, lag in the hundred thousands, and the
state said `running`.

The rule reads only the worker's published snapshot: behind (some partition's lag > 0) and no
batch consumed since max(the moment it was first seen behind, the last consumed batch) for
KAFKA_STALL_SECONDS. Measuring from the first sight of lag, not from the last consumed batch
alone, keeps a burst on a topic that was quiet for an hour from looking stalled at once.

    running ──(behind, nothing consumed for KAFKA_STALL_SECONDS)──▶ stalled
       ▲                                                              │
       └────────(a batch consumed, or no lag left)────────────────────┘
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from servicescheduler.logs import get_logger

if TYPE_CHECKING:
    from servicescheduler.consumers.running.status import WorkerSnapshot

log = get_logger(__name__)


class StallWatch:
    """Called once a second by the supervisor with the worker's snapshot; `reason` while stalled."""

    def __init__(self, limit_seconds: float) -> None:
        self.limit_seconds = limit_seconds
        self.reason: str | None = None
        self._behind_since: float | None = None
        self._logged = False  # the stall's one error line is out

    def reset(self) -> None:
        """A new worker, or one not in the `running` state: nothing is known about its progress."""
        self._behind_since = None
        self.reason = None
        self._logged = False

    def observe(self, snap: WorkerSnapshot, now: float) -> str | None:
        """Updates the verdict from one snapshot (`now` in epoch seconds, as the snapshot's times)."""
        behind = {name: lag for name, lag in (snap.lag or {}).items() if lag}
        if not behind:
            self._end("caught up")
            self._behind_since = None  # the next lag starts a new count
            return None
        if self._behind_since is None:
            self._behind_since = now
        progress_at = max(self._behind_since, snap.last_message_at or 0.0, snap.started_at or 0.0)
        idle = now - progress_at
        if idle < self.limit_seconds:
            self._end("consuming again")
            return None
        total = sum(behind.values())
        worst = ", ".join(f"{name} {lag}" for name, lag in sorted(behind.items(), key=lambda kv: -kv[1])[:3])
        poll_age = None if snap.last_poll_at is None else round(now - snap.last_poll_at, 1)
        self.reason = (
            f"nothing consumed for {idle:.0f} s while {total} messages behind ({worst}); "
            f"last poll returned {'never' if poll_age is None else f'{poll_age} s ago'}"
        )
        if not self._logged:
            self._logged = True
            log.error(
                "consumer_stalled",
                seconds=round(idle, 1),
                limit_seconds=self.limit_seconds,
                messages_behind=total,
                lag=behind,
                seconds_since_last_poll=poll_age,
                hint="inside poll(): a broker or network problem; polls returning: see the client's log; "
                "POST /consumer/restart starts a fresh client",
            )
        return self.reason

    def _end(self, why: str) -> None:
        if self._logged:
            log.warning("consumer_stall_ended", why=why)
        self._logged = False
        self.reason = None
