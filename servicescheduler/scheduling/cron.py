"""Calendar rules: cron expressions (and the `.at(...)` triggers, expressed as one) evaluated
in a time zone under one stated DST policy. Parsing and field matching are cronsim's.

The DST policy (README, "Cron and time zones"):

- a rule naming specific hours (`30 2 * * *`, `.at("02:30")`) is wall-clock time: a local time
  that does not exist that day (spring forward) runs once, at the first instant after the gap;
  a local time that happens twice (fall back) runs once, at its first occurrence;
- a rule whose hour field is `*` or `*/n` (hourly and finer) follows UTC through the change:
  every real hour, minute or second that matches runs once, none skipped, none doubled.

cronsim has a policy of its own (Debian cron's, for 5-field expressions only); every expression
is handed to it as 6 fields, so it never applies it and this module alone decides.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from cronsim.cronsim import Field

FIELD_NAMES = ("second", "minute", "hour", "day-of-month", "month", "day-of-week")
_RANGES = {"second": "0-59", "minute": "0-59", "hour": "0-23", "day-of-month": "1-31", "month": "1-12 or jan-dec"}
_RANGES["day-of-week"] = "0-7 or sun-sat"
_FOLLOW_UP_LIMIT = 1000  # candidates looked at for one answer: bounds a loop over gaps and folds
_SAMPLE = 8  # fires looked at to name a rule's typical period


class CronError(ValueError):
    """A cron expression or time zone is not usable; the message names the field."""


def system_zone() -> tzinfo:
    """The zone `.at(...)` without a zone and `cron(...)` without `tz` use: TZ, else the system's."""
    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    localtime = Path("/etc/localtime")
    if localtime.exists():
        with localtime.open("rb") as data:
            return ZoneInfo.from_file(data, key="localtime")
    return UTC


def zone_named(name: str | tzinfo | None) -> tzinfo:
    """An IANA zone by name (or a tzinfo as is; None: the system zone). Raises CronError."""
    if name is None:
        return system_zone()
    if isinstance(name, tzinfo):
        return name
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CronError(f"unknown time zone {name!r} (an IANA name such as 'Europe/Berlin')") from None


def zone_name(zone: tzinfo) -> str:
    """The zone's IANA name where it has one."""
    return getattr(zone, "key", None) or str(zone)


@dataclass(frozen=True)
class CalendarRule:
    """Six cron fields (seconds first) in a zone; `day_modulus` > 1 keeps only the days whose
    ordinal is a multiple of it (`every(2).days.at(...)`, which cron cannot say)."""

    fields: tuple[str, str, str, str, str, str]
    zone: tzinfo
    day_modulus: int = 1

    @classmethod
    def parse(cls, expression: str, zone: tzinfo, day_modulus: int = 1) -> CalendarRule:
        """Validates `expression` (5 fields, or 6 with seconds first); raises CronError naming the field."""
        if not isinstance(expression, str):
            raise CronError(f"expression must be a string, got {type(expression).__name__}")
        parts = expression.split()
        if len(parts) not in (5, 6):
            raise CronError(
                f"{expression!r} has {len(parts)} fields; expected 5 (minute hour day-of-month month "
                "day-of-week) or 6 (second first)"
            )
        if len(parts) == 5:
            parts.insert(0, "0")
        for name, part in zip(FIELD_NAMES, parts, strict=True):
            if "#" in part or any(_is_last(token) for token in re.split(r"[,/-]", part.upper())):
                raise CronError(f"{name} field: {part!r}: L, LW and # are not supported (standard cron syntax only)")
        fields = (parts[0], parts[1], parts[2], parts[3], parts[4], parts[5])
        try:
            CronSim(" ".join(fields), datetime(2025, 1, 1))
        except CronSimError as exc:
            raise CronError(_name_the_field(str(exc), fields)) from None
        rule = cls(fields, zone, day_modulus)
        if rule.next_fire(datetime(2025, 1, 1, tzinfo=UTC)) is None:
            raise CronError(f"{expression!r} never fires")
        return rule

    @property
    def expression(self) -> str:
        """The six fields as one cron line."""
        return " ".join(self.fields)

    @property
    def wall_clock(self) -> bool:
        """True when the rule names specific hours: DST is handled in local time (module doc)."""
        return not self.fields[2].startswith("*")

    def next_fire(self, after: datetime) -> datetime | None:
        """The first fire time strictly after `after` (aware), as an aware UTC datetime; None if
        there is none within cronsim's 50-year horizon."""
        _check_aware(after)
        for fire in self._fires(after, reverse=False):
            if fire > after:
                return fire
        return None

    def fires_between(self, after: datetime, before: datetime, limit: int) -> list[datetime]:
        """Fire times in (after, before], oldest first: the newest `limit` of them."""
        _check_aware(after)
        _check_aware(before)
        found: list[datetime] = []
        for fire in self._fires(before + timedelta(seconds=1), reverse=True):
            if fire <= after or len(found) >= limit:
                break
            if fire <= before and fire not in found:
                found.append(fire)
        return sorted(found)

    def period_seconds(self) -> tuple[float, float]:
        """(shortest, longest) gap between fires over a sample: its typical period, and the most
        one can wait for the next fire."""
        fires: list[datetime] = []
        moment: datetime | None = datetime(2025, 1, 6, tzinfo=UTC)  # fixed: the answer is pure
        while moment is not None and len(fires) < _SAMPLE:
            moment = self.next_fire(moment)
            if moment is not None:
                fires.append(moment)
        gaps = [(b - a).total_seconds() for a, b in zip(fires, fires[1:], strict=False)]
        if not gaps:
            return 86400.0 * 365, 86400.0 * 366 * 50
        return min(gaps), max(gaps)

    def _fires(self, start: datetime, *, reverse: bool) -> Iterator[datetime]:
        """Candidate fire instants (UTC) from `start` on, in order (ties and folds may repeat)."""
        local = start.astimezone(self.zone)
        if self.wall_clock:
            # Iterate in naive local time, then place each local time on the timeline by the policy.
            naive = local.replace(tzinfo=None)
            if reverse:
                naive += timedelta(hours=3)  # a fold: the first occurrence may be local-later
            sim = CronSim(self.expression, naive, reverse=reverse)
        else:
            sim = CronSim(self.expression, local, reverse=reverse)
        for _, moment in zip(range(_FOLLOW_UP_LIMIT), sim, strict=False):
            if self.day_modulus > 1 and moment.toordinal() % self.day_modulus:
                continue
            yield placed(moment, self.zone) if self.wall_clock else moment.astimezone(UTC)


def placed(local: datetime, zone: tzinfo) -> datetime:
    """The instant (UTC) a naive local time names under the DST policy: its first occurrence if
    it happens twice, the first instant after the gap if it does not happen at all."""
    first = local.replace(tzinfo=zone, fold=0)
    instant = first.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == local:
        return instant  # exists (fold=0 is the first of two occurrences)
    # In a gap: fold=1 reads it with the offset after the change (an instant before the gap),
    # fold=0 with the one before (after the gap); the change lies between. Bisect to the second.
    low = int(local.replace(tzinfo=zone, fold=1).timestamp())
    high = int(first.timestamp())
    after_offset = datetime.fromtimestamp(high, zone).utcoffset()
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == after_offset:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


def _is_last(token: str) -> bool:
    """cronsim's non-standard 'last' forms: L, LW, 5L."""
    return token in ("L", "LW") or (token.endswith("L") and token[:-1].isdigit())


def _check_aware(moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise CronError(f"an aware datetime is needed, got naive {moment.isoformat()}")


def _name_the_field(message: str, fields: tuple[str, ...]) -> str:
    """cronsim says 'Bad minute': add the field's text and its range."""
    for name, part in zip(FIELD_NAMES, fields, strict=True):
        if message != f"Bad {name}":
            continue
        if name == "day-of-month" and _parses(Field.DAY, part):
            return f"{name} field: {part!r} does not occur in the months named ({fields[4]!r})"
        return f"{name} field: {part!r} is not valid (allowed: {_RANGES[name]}, with - , / and *)"
    return message


def _parses(kind: Field, part: str) -> bool:
    try:
        kind.parse(part.upper())
    except CronSimError:
        return False
    return True
