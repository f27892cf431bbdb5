"""Calendar slots that passed while the service was down: recorded `missed`, and with
`catch_up=True` one run at start-up makes up for them.

Interval tasks need none of this: one overdue at start-up runs at once (TrackedTask.is_overdue).
A calendar task's due times are absolute, so those that passed since its last run ended (the
persisted anchor) simply never happened: without a row, nobody would know.
"""

from __future__ import annotations

from dataclasses import dataclass

from servicescheduler.scheduling.bookkeeping import RunBook
from servicescheduler.scheduling.tracked import TrackedTask
from servicescheduler.storage.db import Database
from servicescheduler.storage.recovery import recorded_slots
from servicescheduler.vocabulary import RunOutcome

MAX_MISSED_SLOTS = 100  # after a long outage the newest ones are recorded, not years of minutes


@dataclass(frozen=True)
class Downtime:
    """Slots of one task that passed without a run: all of them, and those without a row yet."""

    slots: list[float]
    unrecorded: list[float]


def passed_while_down(task: TrackedTask, database: Database, now: float) -> Downtime:
    """The calendar slots of `task` after its last ended run and up to `now`.

    Slots already recorded (missed at an earlier start-up, or a run cut short there) are in
    `slots` but not in `unrecorded`, so a restart never records a slot twice.
    """
    if task.anchor is None or not task.trigger.is_calendar:
        return Downtime([], [])  # never ran here: nothing to compare with
    slots = task.trigger.passed_slots(task.anchor, now, MAX_MISSED_SLOTS)
    recorded = recorded_slots(database, task.name, slots)
    return Downtime(slots, [slot for slot in slots if round(slot, 3) not in recorded])


def record_downtime(task: TrackedTask, database: Database, book: RunBook, now: float) -> bool:
    """Records `task`'s calendar slots that passed while the service was down as `missed`;
    returns True when the task asks to catch up on them (`catch_up=True`: one run now)."""
    downtime = passed_while_down(task, database, now)
    for due in downtime.unrecorded:
        book.unstarted(task, due, RunOutcome.MISSED, "the service was not running at this time")
    return task.spec.catch_up and bool(downtime.slots)
