"""Agenda: the scheduler's min-heap of due items, so a wake-up costs O(due items), not O(tasks).

Items are never removed when a task is disabled or rescheduled: its generation number changes
and stale items are skipped when they come up (and dropped in bulk when they pile up).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import NamedTuple


class DueItem(NamedTuple):
    """Something to do at `due` (epoch seconds): run a task, check an overrun, check a component."""

    due: float
    seq: int  # ties are served in insertion order
    kind: str
    name: str
    generation: int
    label: str


class Agenda:
    """Min-heap of DueItems ordered by due time."""

    def __init__(self) -> None:
        self._heap: list[DueItem] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, due: float, kind: str, name: str, generation: int, label: str) -> None:
        """Adds an item."""
        heapq.heappush(self._heap, DueItem(due, next(self._seq), kind, name, generation, label))

    def pop_due(self, horizon: float) -> list[DueItem]:
        """Removes and returns every item due at or before `horizon`, earliest first."""
        items = []
        while self._heap and self._heap[0].due <= horizon:
            items.append(heapq.heappop(self._heap))
        return items

    def next_due(self) -> float | None:
        """The earliest due time, or None when empty."""
        return self._heap[0].due if self._heap else None

    def compact(self, keep: Callable[[DueItem], bool]) -> None:
        """Drops the items for which `keep` is false (superseded runs)."""
        self._heap = [item for item in self._heap if keep(item)]
        heapq.heapify(self._heap)
