"""The event contract on the wire, and `decode()` from a raw Kafka message to a validated `Event`.

A message value is one UTF-8 JSON object::

    {"id": "ord-1", "type": "order.created", "occurred_at": "2025-01-01T12:00:00Z",
     "data": {...}, "notify": {"channel": "webhook", "recipient": "ops@example.com"}}

`id` and `type` are required; `occurred_at` defaults to the Kafka message timestamp; `data` and
`notify` are optional. Unknown top-level fields are IGNORED (not rejected): producers may add
fields before this service knows them, and rejecting would dead-letter a whole rolling deploy.

`decode()` never raises anything but BadMessage, whatever the bytes: text fields that a database
column cannot hold (NUL characters), unpaired surrogates, numbers beyond a double, nesting deeper
than MAX_DEPTH and dates that leave the datetime range when converted to UTC are all reasons.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from servicescheduler.consumers.decoding.payload import depth_exceeds, find_unpaired_surrogate
from servicescheduler.support.validation import describe_errors

# Reasons double as the `reason` label of the dead-letter metric: keep the set small and fixed.
OVERSIZE, ENCODING, JSON_INVALID, SCHEMA, EMPTY, HANDLER, DECODE, STORE, BATCH = (
    "oversize",
    "encoding",
    "json",
    "schema",
    "empty",
    "handler",
    "decode",
    "store",
    "batch",  # a whole record batch the client could not decode (codec missing, corrupt)
)
KEY = "key"  # a declared topic's idempotency key could not be had (decoding/topic_records.py)
KEY_MAX_CHARS = 256  # width of events.key
# Nesting a producer can mean; far below the recursion limits of the JSON encoders the store uses.
MAX_DEPTH = 64


def _no_nul(value: str) -> str:
    """Text columns (PostgreSQL's text/varchar) cannot hold NUL: refuse it at the door."""
    if "\x00" in value:
        raise ValueError("must not contain NUL (\\u0000) characters")
    return value


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

    _recipient_no_nul = field_validator("recipient")(_no_nul)


class Event(BaseModel):
    """A validated event; `occurred_at` is always timezone-aware UTC."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    id: str = Field(min_length=1, max_length=128)
    type: str = Field(min_length=1, max_length=128)
    occurred_at: datetime | None = None
    data: dict[str, Any] | None = None
    notify: Notify | None = None

    _text_no_nul = field_validator("id", "type")(_no_nul)

    @field_validator("occurred_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        """Naive timestamps are taken as UTC; aware ones are converted to UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        try:
            return value.astimezone(UTC)
        except (OverflowError, ValueError):  # 0001-01-01T00:00+01:00 is year 0 in UTC
            raise ValueError("is out of the representable range once converted to UTC") from None


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
    payload = _parse(value)
    if not isinstance(payload, dict):
        raise BadMessage(SCHEMA, f"value must be a JSON object, got {type(payload).__name__}")
    if depth_exceeds(value, payload, MAX_DEPTH):
        raise BadMessage(JSON_INVALID, f"invalid JSON: nested deeper than {MAX_DEPTH} levels")
    if payload.get("occurred_at") is None:
        # Filled in before validation: one model build per message (model_copy was a third of decode).
        payload["occurred_at"] = timestamp_of(message)
    try:
        return Event.model_validate(payload)
    except ValidationError as exc:
        raise BadMessage(SCHEMA, describe_errors(exc.errors())) from None


def _parse(value: bytes) -> Any:
    """JSON bytes to Python values with msgspec (5x the stdlib); the stdlib re-reads only
    refused values, so reasons keep the wording they always had."""
    try:
        return _FAST.decode(value)
    except (msgspec.DecodeError, RecursionError) as exc:
        fast_error = str(exc) or type(exc).__name__
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadMessage(ENCODING, f"value is not UTF-8 (byte {exc.start})") from None
    try:
        payload = _JSON.decode(text)
    except RecursionError:
        raise BadMessage(JSON_INVALID, f"invalid JSON: nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise BadMessage(JSON_INVALID, f"invalid JSON: {exc}") from None
    where = find_unpaired_surrogate(payload)
    if where is not None:
        raise BadMessage(JSON_INVALID, f"invalid JSON: unpaired UTF-16 surrogate in {where}")
    raise BadMessage(JSON_INVALID, f"invalid JSON: {fast_error}")  # e.g. 1e400: "Number out of range"


parse_json = _parse  # for the contracts of declared topics (decoding/topic_records.py)


def _reject_constant(name: str) -> None:
    """NaN/Infinity are not JSON (PostgreSQL's json type rejects them): refuse them here."""
    raise ValueError(f"{name} is not valid JSON")


def timestamp_of(message: Any) -> datetime:
    """The record's timestamp as a UTC datetime (now when the record has none).

    Raises BadMessage when the timestamp is beyond what a datetime holds (after year 9999).
    """
    millis = getattr(message, "timestamp", None)
    if isinstance(millis, int) and millis > 0:
        try:
            return datetime.fromtimestamp(millis / 1000, tz=UTC)
        except (OverflowError, ValueError, OSError):
            raise BadMessage(
                SCHEMA, f"occurred_at: absent, and the Kafka timestamp {millis} ms is out of the representable range"
            ) from None
    return datetime.now(UTC)


def decode_key(key: bytes | None) -> str | None:
    """The message key as text when it is UTF-8 and fits the column, else None."""
    if key is None:
        return None
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if len(text) <= KEY_MAX_CHARS and "\x00" not in text else None


# One decoder for every message: json.loads(..., parse_constant=...) builds a new one per call.
_JSON = json.JSONDecoder(parse_constant=_reject_constant)
_FAST = msgspec.json.Decoder()
