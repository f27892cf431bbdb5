"""When a task runs: `schedule`'s fluent trigger language, evaluated on a drift-free grid.

Declare a trigger with `every(30).seconds`, `every(5).to(10).minutes`, `every().day.at("03:00")`,
`every().monday.at("09:30", "Europe/Berlin")` or `every(1).hours.until("2030-01-01 00:00")`,
exactly as in the `schedule` library. The jobs come from a private `schedule.Scheduler`
and are never `.do()`-ed: they describe *when*; the Scheduler decides *where* it runs.

`schedule` itself computes a job's next run from the moment the previous run *ended*, so a
100 ms body turns "every 1 s" into every 1.1 s. `Trigger.next_due` instead steps from the
previous *due time* (start-to-start grid) for interval triggers; calendar triggers (`.at`,
weekdays) are absolute times and are delegated to `schedule`.
"""

from __future__ import annotations

import copy
import math
import random
from dataclasses import dataclass
from datetime import timedelta

import schedule

# Jobs are built from this private instance and never added to it, so the module-level
# default scheduler of `schedule` is never touched.
_TRIGGER_FACTORY = schedule.Scheduler()


_UNIT_SECONDS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400, "weeks": 604800}


class TriggerError(ValueError):
    """A trigger is not usable (bad unit, `.at` misuse, unknown time zone, ...)."""


def every(interval: int = 1) -> schedule.Job:
    """Starts a trigger declaration, e.g. `every(30).seconds`; returns a `schedule.Job`."""
    return _TRIGGER_FACTORY.every(interval)


@dataclass(frozen=True)
class Trigger:
    """A validated `schedule.Job` template plus the grid arithmetic the library lacks."""

    job: schedule.Job

    @classmethod
    def from_job(cls, job: schedule.Job) -> Trigger:
        """Validates `job` (raising TriggerError with schedule's message) and wraps it."""
        if not isinstance(job, schedule.Job):
            raise TriggerError(f"trigger must be built with every(...), got {type(job).__name__}")
        probe = copy.deepcopy(job)
        try:
            probe._schedule_next_run()  # the library's own validation of unit/at/start_day
        except (schedule.ScheduleError, ValueError) as exc:
            raise TriggerError(str(exc)) from None
        if job.unit in ("seconds", "minutes", "hours", "days", "weeks") and job.interval < 1:
            raise TriggerError("interval must be at least 1")
        return cls(job)

    @classmethod
    def interval(cls, seconds: int) -> Trigger:
        """A plain `every(seconds).seconds` trigger."""
        return cls.from_job(every(seconds).seconds)

    @property
    def is_calendar(self) -> bool:
        """True for `.at(...)` or weekday triggers, whose due times are absolute."""
        return self.job.at_time is not None or self.job.start_day is not None

    @property
    def interval_seconds(self) -> float | None:
        """The grid period in seconds; None for calendar triggers. Jittered: the lower bound."""
        if self.is_calendar:
            return None
        return self.job.interval * _UNIT_SECONDS[self._unit]

    @property
    def nominal_period_seconds(self) -> float:
        """The typical time between runs (calendar triggers: their unit), for grace and staleness."""
        return self.job.interval * _UNIT_SECONDS[self._unit]

    @property
    def _unit(self) -> str:
        """The job's unit; `from_job` checked it is set, so None means the job was changed since."""
        unit = self.job.unit
        if unit is None:
            raise TriggerError("trigger has no unit (seconds, minutes, hours, days or weeks)")
        return unit

    def describe(self) -> str:
        """Human text such as 'every 30 seconds' or 'every monday at 09:30:00 Europe/Berlin'."""
        job = self.job
        unit = self._unit[:-1] if job.interval == 1 and job.latest is None else self._unit
        count = "" if job.interval == 1 and job.latest is None else f"{job.interval} "
        if job.latest is not None:
            count = f"{job.interval} to {job.latest} "
        text = f"every {count}{unit}"
        if job.start_day is not None:
            text = f"every {job.start_day}"
        if job.at_time is not None:
            text += f" at {job.at_time.isoformat()}"
            # schedule leaves `at_time_zone` unannotated (typed as None): read it as any object.
            zone: object = job.at_time_zone
            if zone is not None:
                text += f" {zone}"
        if job.cancel_after is not None:
            text += f" until {job.cancel_after.isoformat(sep=' ')}"
        return text

    def next_due(self, previous_due: float | None, now: float) -> float | None:
        """The next due time (epoch seconds) strictly after `now`; None once `.until()` has passed.

        Interval triggers step from `previous_due` on its grid (no drift, and no burst of
        catch-up runs: slots already in the past are skipped). Without a previous due time
        the first run is one period after `now`, as `schedule` does it.
        """
        due = self._calendar_next() if self.is_calendar else self._grid_next(previous_due, now)
        if self.job.cancel_after is not None and due > self.job.cancel_after.timestamp():
            return None
        return due

    def passed_slots(self, after: float, before: float, limit: int) -> list[float]:
        """Calendar due times in (after, before], oldest first: the newest `limit` of them.

        Empty for interval triggers. Steps back from the next due time by whole periods; day and
        week periods are stepped in local wall-clock time, so a DST change keeps "03:00" at 03:00.
        """
        if not self.is_calendar:
            return []
        probe = copy.copy(self.job)
        probe._schedule_next_run()
        assert probe.next_run is not None and self.job.unit is not None
        step = timedelta(**{self.job.unit: self.job.interval})
        wall_clock = self.job.unit in ("days", "weeks")
        slots: list[float] = []
        for back in range(1, 2 * limit + 2):  # bounded: each step back is one slot (or the future)
            moment = (
                (probe.next_run - back * step).timestamp()
                if wall_clock
                else probe.next_run.timestamp() - back * step.total_seconds()
            )
            if moment <= after or len(slots) >= limit:
                break
            if moment <= before:
                slots.append(moment)
        return sorted(slots)

    def _period(self) -> float:
        job = self.job
        steps = job.interval if job.latest is None else random.randint(job.interval, job.latest)
        return steps * _UNIT_SECONDS[self._unit]

    def _grid_next(self, previous_due: float | None, now: float) -> float:
        period = self._period()
        if previous_due is None:
            return now + period
        due = previous_due + period
        if due <= now:
            due += math.floor((now - due) / period + 1) * period
        return due

    def _calendar_next(self) -> float:
        probe = copy.copy(self.job)
        probe._schedule_next_run()
        if probe.next_run is None:
            raise TriggerError(f"schedule computed no next run for {self.describe()}")
        # schedule returns a naive local-time datetime; .timestamp() reads it as local time.
        return probe.next_run.timestamp()
