"""CheckChain: keeps ONE chain of loop checks for a supervised component, however often it is woken.

The scheduler loop checks a component when a pending check comes due, and the component's
answer schedules the next one. Every wake-up (enable, restart) adds a pending check; without
bookkeeping each would start its own chain forever (50 enables: 51 checks a second). The chain
remembers the due time of every pending check it caused; a check ends its chain (answers None)
when another pending check comes no later than the one it would ask for.
"""

from __future__ import annotations

import bisect


class CheckChain:
    """Due times of the checks pending in the loop's agenda (loop-thread and request-thread safe
    under the owner's lock)."""

    def __init__(self, slack: float) -> None:
        self._pending: list[float] = []  # sorted
        self._slack = slack

    def woken(self, at: float) -> None:
        """A wake-up asked the loop for a check at `at`."""
        bisect.insort(self._pending, at)

    def fired(self, now: float) -> None:
        """A check runs now: the earliest pending one (the loop runs them in due order).

        Entries more than a minute overdue are dropped: a wake that never reached the loop
        (a stopped scheduler) must not end the chain forever.
        """
        if self._pending:
            self._pending.pop(0)
        while self._pending and self._pending[0] < now - 60.0:
            self._pending.pop(0)

    def next_after(self, now: float, wanted: float | None) -> float | None:
        """The due time to return from this check: `wanted`, or None when a pending check serves."""
        if wanted is None:
            return None
        if self._pending and self._pending[0] <= wanted + self._slack:
            return None
        bisect.insort(self._pending, wanted)
        return wanted
