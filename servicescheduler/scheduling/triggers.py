"""When a task runs: `schedule`'s fluent trigger language and cron lines, evaluated purely.

Declare a trigger with `every(30).seconds`, `every(5).to(10).minutes`, `every().day.at("03:00")`,
`every().monday.at("09:30", "Europe/Berlin")`, `every(1).hours.until("2030-01-01 00:00")`, exactly
as in the `schedule` library, or with `cron("30 2 * * 1-5", tz="Europe/Berlin")`. The jobs come
from a private `schedule.Scheduler` and are never `.do()`-ed: they describe *when*; the Scheduler
decides *where* it runs.

Every trigger answers `next_fire(after)`: a pure function of an aware datetime (no wall clock),
used by the engine, the dashboard's "next runs" and the tests.

- Interval triggers step from the previous *due time* (a start-to-start grid): `schedule` steps
  from the moment the previous run ended, so a 100 ms body would turn "every 1 s" into 1.1 s.
  A jittered interval (`every(5).to(10)`) draws its step from a hash of the task's name and the
  previous slot, not from a per-process random generator, so every replica names the same slots.
- Calendar triggers (`.at(...)`, weekdays, cron) are absolute times: a `CalendarRule` (cron.py)
  under one DST policy.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo

import schedule

from servicescheduler.scheduling.cron import CalendarRule, CronError, zone_name, zone_named

# Jobs are built from this private instance and never added to it, so the module-level
# default scheduler of `schedule` is never touched.
_TRIGGER_FACTORY = schedule.Scheduler()


_UNIT_SECONDS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400, "weeks": 604800}
_WEEKDAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")


class TriggerError(ValueError):
    """A trigger is not usable (bad unit, `.at` misuse, unknown time zone, bad cron field, ...)."""


def every(interval: int = 1) -> schedule.Job:
    """Starts a trigger declaration, e.g. `every(30).seconds`; returns a `schedule.Job`."""
    return _TRIGGER_FACTORY.every(interval)


def cron(expression: str, tz: str | tzinfo | None = None) -> Trigger:
    """A cron trigger: 5 fields (minute hour day-of-month month day-of-week), or 6 with seconds
    first (as Quartz and Spring); ranges, steps, lists and names (mon, jan). `tz` is an IANA
    zone name (default: the system's zone, TZ). Raises TriggerError naming the bad field."""
    try:
        rule = CalendarRule.parse(expression, zone_named(tz))
    except CronError as exc:
        raise TriggerError(f"cron {expression!r}: {exc}") from None
    return CronTrigger(rule, expression=" ".join(expression.split()))


class Trigger(ABC):
    """When a task is due: `next_fire` for one answer, `next_due` for the engine, `passed_slots`
    for downtime. Build one with `every(...)` (wrapped by `from_job`) or `cron(...)`."""

    key: str  # the task's name: jitter is derived from it

    @classmethod
    def from_job(cls, job: schedule.Job) -> Trigger:
        """Validates `job` (raising TriggerError with schedule's message) and wraps it."""
        return ScheduleTrigger.from_job(job)

    @classmethod
    def interval(cls, seconds: int) -> Trigger:
        """A plain `every(seconds).seconds` trigger."""
        return ScheduleTrigger.from_job(every(seconds).seconds)

    @abstractmethod
    def for_task(self, name: str) -> Trigger:
        """This trigger for the task `name` (its jitter is the task's own)."""

    @property
    @abstractmethod
    def is_calendar(self) -> bool:
        """True for triggers whose due times are absolute (`.at`, weekdays, cron)."""

    @property
    @abstractmethod
    def interval_seconds(self) -> float | None:
        """The grid period in seconds; None for calendar triggers. Jittered: the lower bound."""

    @property
    @abstractmethod
    def nominal_period_seconds(self) -> float:
        """The typical time between runs, for misfire grace and staleness."""

    @property
    def at(self) -> str | None:
        """The `.at(...)` time of day, if any (the status view shows it)."""
        return None

    @abstractmethod
    def describe(self) -> str:
        """Human text such as 'every 30 seconds' or "cron '30 2 * * 1-5' Europe/Berlin"."""

    @abstractmethod
    def next_fire(self, after: datetime) -> datetime | None:
        """The first due time strictly after `after` (aware; for interval triggers `after` is the
        previous slot), as an aware UTC datetime; None once the trigger has ended (`.until`)."""

    def upcoming(self, after: datetime, count: int) -> list[datetime]:
        """The next `count` due times after `after` (fewer if the trigger ends)."""
        fires: list[datetime] = []
        moment: datetime | None = after
        while len(fires) < count and moment is not None:
            moment = self.next_fire(moment)
            if moment is not None:
                fires.append(moment)
        return fires

    def next_due(self, previous_due: float | None, now: float) -> float | None:
        """The next due time (epoch seconds) strictly after `now`; None once the trigger ended.

        Interval triggers step from `previous_due` on its grid (no drift, and no burst of
        catch-up runs: slots already in the past are skipped). Without a previous due time
        the first run is one period after `now`, as `schedule` does it.
        """
        if self.is_calendar:
            # A run is dispatched a little before its due time (the coordinator's lead): the
            # next one comes after that slot, not after `now`, which would name it again.
            after = now if previous_due is None else max(now, previous_due)
            fire = self.next_fire(_instant(after))
            return None if fire is None else fire.timestamp()
        return self._grid_next(previous_due, now)

    def passed_slots(self, after: float, before: float, limit: int) -> list[float]:
        """Calendar due times in (after, before], oldest first: the newest `limit` of them.
        Empty for interval triggers."""
        rule = self._rule
        if rule is None:
            return []
        fires = rule.fires_between(_instant(after), _instant(before), limit)
        return [fire.timestamp() for fire in fires if self._within_until(fire)]

    @property
    def _rule(self) -> CalendarRule | None:
        """The calendar rule of a calendar trigger."""
        return None

    def _within_until(self, fire: datetime) -> bool:
        return True

    def _step_after(self, slot: float) -> float:
        """Seconds from the slot `slot` to the next one on an interval trigger's grid."""
        raise TriggerError(f"{self.describe()} has no interval grid")

    def _grid_next(self, previous_due: float | None, now: float) -> float | None:
        # Epoch arithmetic, not next_fire's datetimes: this runs on the loop for every due run.
        origin = now if previous_due is None else previous_due
        period = self._step_after(origin)
        due = origin + period
        if previous_due is not None and due <= now:
            due += math.floor((now - due) / period + 1) * period
        return due if self._within_until(_instant(due)) else None


@dataclass(frozen=True)
class ScheduleTrigger(Trigger):
    """A validated `schedule.Job` template: an interval grid, or a calendar rule for `.at`/weekdays."""

    job: schedule.Job
    key: str = ""
    calendar: CalendarRule | None = field(default=None, compare=False)

    @classmethod
    def from_job(cls, job: schedule.Job) -> ScheduleTrigger:
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
        return cls(job, calendar=_calendar_rule(job))

    def for_task(self, name: str) -> ScheduleTrigger:
        """This trigger for the task `name` (its jitter is the task's own)."""
        return dataclasses.replace(self, key=name)

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
    def at(self) -> str | None:
        """The `.at(...)` time of day, if any."""
        return self.job.at_time.isoformat() if self.job.at_time is not None else None

    @property
    def _unit(self) -> str:
        """The job's unit; `from_job` checked it is set, so None means the job was changed since."""
        unit = self.job.unit
        if unit is None:
            raise TriggerError("trigger has no unit (seconds, minutes, hours, days or weeks)")
        return unit

    @property
    def _rule(self) -> CalendarRule | None:
        return self.calendar

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

    def next_fire(self, after: datetime) -> datetime | None:
        """Calendar: the rule's next fire after `after`. Interval: one step after the slot `after`,
        the step of a jittered trigger derived from (task, slot), never drawn per process."""
        _require_aware(after)
        if self.calendar is not None:
            fire = self.calendar.next_fire(after)
        else:
            fire = _instant(after.timestamp() + self._step_after(after.timestamp()))
        return fire if fire is not None and self._within_until(fire) else None

    def _step_after(self, slot: float) -> float:
        """Seconds from the slot `slot` to the next: fixed, or for `every(a).to(b)` a whole number
        of units in [a, b] that every replica derives alike from the task's name and the slot."""
        job = self.job
        steps = job.interval
        if job.latest is not None:
            digest = hashlib.blake2b(f"{self.key}|{slot:.3f}".encode(), digest_size=8).digest()
            steps += int.from_bytes(digest, "big") % (job.latest - job.interval + 1)
        return float(steps * _UNIT_SECONDS[self._unit])

    def _within_until(self, fire: datetime) -> bool:
        # schedule's `.until()` is naive local time (or aware): compare on the timeline.
        until = self.job.cancel_after
        return until is None or fire.timestamp() <= until.timestamp()


@dataclass(frozen=True)
class CronTrigger(Trigger):
    """A cron line in a zone (build it with `cron(...)`)."""

    rule: CalendarRule
    expression: str
    key: str = ""

    def for_task(self, name: str) -> CronTrigger:
        """This trigger for the task `name`."""
        return dataclasses.replace(self, key=name)

    @property
    def is_calendar(self) -> bool:
        """Always: cron times are absolute."""
        return True

    @property
    def interval_seconds(self) -> float | None:
        """None: a cron trigger has no grid period (reschedule replaces it by an interval)."""
        return None

    @property
    def nominal_period_seconds(self) -> float:
        """The shortest gap between two fires (a sample from a fixed date: pure)."""
        return _periods(self.rule)[0]

    @property
    def _rule(self) -> CalendarRule | None:
        return self.rule

    def describe(self) -> str:
        """E.g. "cron '30 2 * * 1-5' Europe/Berlin"."""
        return f"cron {self.expression!r} {zone_name(self.rule.zone)}"

    def next_fire(self, after: datetime) -> datetime | None:
        """The rule's next fire strictly after `after`."""
        _require_aware(after)
        return self.rule.next_fire(after)


@functools.lru_cache(maxsize=1024)
def _periods(rule: CalendarRule) -> tuple[float, float]:
    """A rule's (shortest, longest) gap, computed once per rule (it walks a few fires)."""
    return rule.period_seconds()


def _calendar_rule(job: schedule.Job) -> CalendarRule | None:
    """The `.at(...)`/weekday job as a calendar rule (so it has the same DST policy as cron)."""
    if job.at_time is None and job.start_day is None:
        return None
    at = job.at_time
    second, minute, hour = (str(at.second), str(at.minute), str(at.hour)) if at is not None else ("0", "0", "0")
    every_n = "*" if job.interval == 1 else f"*/{job.interval}"
    day_modulus = 1
    weekday = "*"
    if job.start_day is not None:
        weekday = str(_WEEKDAYS.index(job.start_day))
    elif job.unit == "days":
        day_modulus = job.interval  # every(n).days: days n apart, counted from a fixed origin
    elif job.unit == "hours":
        hour = every_n
    elif job.unit == "minutes":
        minute, hour = every_n, "*"
    # schedule keeps a pytz zone; the same IANA name as a zoneinfo zone (None: the system's).
    zone: object = job.at_time_zone
    try:
        return CalendarRule.parse(
            f"{second} {minute} {hour} * * {weekday}", zone_named(None if zone is None else str(zone)), day_modulus
        )
    except CronError as exc:
        raise TriggerError(str(exc)) from None


def _instant(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _require_aware(moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise TriggerError(f"next_fire needs an aware datetime, got naive {moment.isoformat()}")
