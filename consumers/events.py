"""The event contract on the wire, and `decode()` from a raw Kafka message to a validated `Event`.

A message value is one UTF-8 JSON object::

    {"id": "ord-1", "type": "order.created", "occurred_at": "2025-01-01T12:00:00Z",
     "data": {...}, "notify": {"channel": "webhook", "recipient": "ops@example.com"}}

`id` and `type` are required; `occurred_at` defaults to the Kafka message timestamp; `data` and
`notify` are optional. Unknown top-level fields are IGNORED (not rejected): producers may add
fields before this service knows them, and rejecting would dead-letter a whole rolling deploy.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from support.validation import describe_errors

# Reasons double as the `reason` label of the dead-letter metric: keep the set small and fixed.
OVERSIZE, ENCODING, JSON_INVALID, SCHEMA, EMPTY, HANDLER = (
    "oversize", "encoding", "json", "schema", "empty", "handler")
KEY_MAX_CHARS = 256  # width of events.key


class BadMessage(ValueError):
    """A message that can never be processed; `kind` is a fixed label, `reason` the human detail."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(f"{kind}: {reason}")
        self.kind = kind
        self.reason = reason


class Notify(BaseModel):
    """Where to send a notification about this event."""

    model_config = ConfigDict(extra="ignore")
    channel: Literal["webhook", "log"]
    recipient: str = Field(min_length=1, max_length=256)


class Event(BaseModel):
    """A validated event; `occurred_at` is always timezone-aware UTC."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    id: str = Field(min_length=1, max_length=128)
    type: str = Field(min_length=1, max_length=128)
    occurred_at: datetime | None = None
    data: dict[str, Any] | None = None
    notify: Notify | None = None

    @field_validator("occurred_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        """Naive timestamps are taken as UTC; aware ones are converted to UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def decode(message: Any, *, max_bytes: int = 1_048_576) -> Event:
    """Decodes and validates a Kafka record (`.value`, `.timestamp` in ms).

    Returns the Event (occurred_at filled from the record timestamp when absent); raises
    BadMessage(kind, reason) for an empty, oversize, non-UTF-8, non-JSON or invalid value.
    """
    value: bytes | None = message.value
    if value is None or len(value) == 0:
        raise BadMessage(EMPTY, "message has no value")
    if len(value) > max_bytes:
        raise BadMessage(OVERSIZE, f"value is {len(value)} bytes, limit {max_bytes}")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadMessage(ENCODING, f"value is not UTF-8 (byte {exc.start})") from None
    try:
        payload = _JSON.decode(text)
    except ValueError as exc:
        raise BadMessage(JSON_INVALID, f"invalid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise BadMessage(SCHEMA, f"value must be a JSON object, got {type(payload).__name__}")
    try:
        event = Event.model_validate(payload)
    except ValidationError as exc:
        raise BadMessage(SCHEMA, describe_errors(exc.errors())) from None
    if event.occurred_at is None:
        event = event.model_copy(update={"occurred_at": timestamp_of(message)})
    return event


def _reject_constant(name: str) -> None:
    """NaN/Infinity are not JSON (PostgreSQL's json type rejects them): refuse them here."""
    raise ValueError(f"{name} is not valid JSON")


def timestamp_of(message: Any) -> datetime:
    """The record's timestamp as a UTC datetime (now when the record has none)."""
    millis = getattr(message, "timestamp", None)
    if isinstance(millis, int) and millis > 0:
        return datetime.fromtimestamp(millis / 1000, tz=UTC)
    return datetime.now(UTC)


def decode_key(key: bytes | None) -> str | None:
    """The message key as text when it is UTF-8 and fits the column, else None."""
    if key is None:
        return None
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if len(text) <= KEY_MAX_CHARS else None


# One decoder for every message: json.loads(..., parse_constant=...) builds a new one per call.
_JSON = json.JSONDecoder(parse_constant=_reject_constant)
