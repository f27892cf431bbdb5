"""UTC time and its one text form: ISO 8601 with a `Z` suffix, everywhere in the API and logs."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time as a timezone-aware UTC datetime."""
    return datetime.now(UTC)


def to_datetime(epoch: float | None) -> datetime | None:
    """Epoch seconds as an aware UTC datetime (None stays None)."""
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def to_epoch(value: datetime | None) -> float | None:
    """An aware or naive-UTC datetime (SQLite returns naive ones) as epoch seconds."""
    if value is None:
        return None
    return as_utc(value).timestamp()


def as_utc(value: datetime) -> datetime:
    """`value` as an aware UTC datetime; a naive value is taken to be UTC already."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso(value: datetime | float | None) -> str | None:
    """ISO 8601 in UTC with a `Z` suffix (`2026-11-26T12:00:00.250000Z`); accepts epoch seconds."""
    if value is None:
        return None
    moment = to_datetime(value) if isinstance(value, (int, float)) else as_utc(value)
    assert moment is not None
    return moment.isoformat().replace("+00:00", "Z")
