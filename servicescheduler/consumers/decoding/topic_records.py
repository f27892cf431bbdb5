"""A record of a declared topic to its event and payload, by the topic's contract.

`decode_record(contract, message, max_bytes)` returns `(event, payload)`: the events row's
values (a PlainEvent: id = the idempotency key, type, occurred_at, data = the validated payload
as JSON) and what the contract's handler receives (the model instance, dict, bytes, CloudEvent or
Event). Like `decode()`, it raises nothing but BadMessage, whatever the bytes and whatever the
user's code (decoder, model validators, key and occurred_at functions) raises: the message is
dead-lettered with the reason and the partition moves on.

Keys: the contract's `key(payload)` must return a non-empty string of at most 128 characters
(the events id column) without NUL. Without `key=`, the payload's `id` (a string, or an integer
taken as its decimal text); for `bytes` the record's own Kafka key; for CloudEvents
`"{source}:{id}"`, or `"ce:sha256:<hex of source and id>"` when that is over 128 characters, so a
long source URI still has a stable key.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
from pydantic import BaseModel, ValidationError

from servicescheduler.consumers.decoding import cloudevents
from servicescheduler.consumers.decoding.contracts import TopicContract
from servicescheduler.consumers.decoding.events import (
    DECODE,
    EMPTY,
    JSON_INVALID,
    KEY,
    MAX_DEPTH,
    OVERSIZE,
    SCHEMA,
    BadMessage,
    Event,
    decode_key,
    parse_json,
    timestamp_of,
)
from servicescheduler.consumers.decoding.payload import depth_exceeds
from servicescheduler.consumers.decoding.wire import ID_MAX_CHARS, PlainEvent, decode_event
from servicescheduler.support.validation import describe_errors

_encode = msgspec.json.Encoder().encode
_roundtrip = msgspec.json.Decoder().decode


RecordDecoder = Callable[[Any, int], tuple[PlainEvent | Event, Any]]


def decode_record(contract: TopicContract, message: Any, *, max_bytes: int) -> tuple[PlainEvent | Event, Any]:
    """(event, payload) of a record of `contract.topic`; BadMessage for anything else."""
    return record_decoder(contract)(message, max_bytes)


def record_decoder(contract: TopicContract) -> RecordDecoder:
    """`decode(message, max_bytes)` for the records of `contract.topic`: a JSON topic with a
    pydantic model (the common case) gets a path of its own; the rest `_decode_any`."""
    model = contract.model
    if contract.format == "json" and contract.decoder is None and contract.is_model:
        assert model is not None
        if getattr(model, "__pydantic_complete__", False):
            return _model_path(contract, model)
    return lambda message, max_bytes: _decode_any(contract, message, max_bytes=max_bytes)


def _model_path(contract: TopicContract, model: type[BaseModel]) -> RecordDecoder:
    """JSON bytes straight into the model's validator (pydantic-core parses them), its own
    serializer for `data`: ~2x the envelope's decoding cost instead of ~3x through the general
    path. `data` is not re-encoded to check it: what a validator could make unstorable (a lone
    surrogate) fails the batch's insert, and the store's bisection dead-letters that message."""
    validate = model.__pydantic_validator__.validate_json
    key_fn, when_fn, event_type, name = contract.key, contract.occurred_at, contract.event_type, model.__name__

    def decode(message: Any, max_bytes: int) -> tuple[PlainEvent | Event, Any]:
        value: bytes | None = message.value
        if not value:
            raise BadMessage(EMPTY, "message has no value")
        if len(value) > max_bytes:
            raise BadMessage(OVERSIZE, f"value is {len(value)} bytes, limit {max_bytes}")
        try:
            payload = validate(value)
        except ValidationError as exc:
            raise BadMessage(SCHEMA, describe_errors(exc.errors())) from None
        except Exception as exc:  # a validator of the user's model that raised something else
            raise BadMessage(SCHEMA, f"model {name} raised {type(exc).__name__}: {exc}") from None
        if key_fn is None:
            key = _key(contract, payload, message)
        else:
            try:
                raw = key_fn(payload)
            except Exception as exc:
                raise BadMessage(KEY, f"key function raised {type(exc).__name__}: {exc}") from None
            if isinstance(raw, str) and 0 < len(raw) <= ID_MAX_CHARS and "\x00" not in raw:
                key = raw
            else:
                key = _checked_key(raw, "the key function returned")  # raises the reason
        occurred_at = timestamp_of(message) if when_fn is None else _occurred_at(contract, payload, message, None)
        try:
            data = payload.__pydantic_serializer__.to_python(payload, mode="json")
        except Exception as exc:
            raise BadMessage(SCHEMA, f"payload cannot be dumped as JSON: {type(exc).__name__}: {exc}") from None
        return PlainEvent(key, event_type, occurred_at, data), payload

    return decode


def _decode_any(contract: TopicContract, message: Any, *, max_bytes: int) -> tuple[PlainEvent | Event, Any]:
    """Every other contract: envelope, CloudEvents, decoders, dict and bytes models."""
    if contract.format == "envelope":  # the handler gets an Event (notify included), as handlers do
        event = decode_event(message, max_bytes=max_bytes)
        return event, event if isinstance(event, Event) else event.to_event()
    value: bytes | None = message.value
    if value is None or len(value) == 0:
        raise BadMessage(EMPTY, "message has no value")
    if len(value) > max_bytes:
        raise BadMessage(OVERSIZE, f"value is {len(value)} bytes, limit {max_bytes}")
    if contract.format == "cloudevents":
        return _cloudevent(contract, message, value)
    obj: Any = value if contract.decoder is None else _run_decoder(contract, value, message)
    payload = _validate(contract, obj, from_decoder=contract.decoder is not None)
    key = _key(contract, payload, message)
    occurred_at = _occurred_at(contract, payload, message, None)
    return PlainEvent(key, contract.event_type, occurred_at, _data(payload)), payload


def _run_decoder(contract: TopicContract, value: bytes, message: Any) -> Any:
    assert contract.decoder is not None
    try:
        return contract.decoder(value, list(getattr(message, "headers", None) or ()))
    except Exception as exc:  # the user's decoder: whatever it raises costs this message only
        raise BadMessage(DECODE, f"decoder raised {type(exc).__name__}: {exc}") from None


def _validate(contract: TopicContract, obj: Any, *, from_decoder: bool) -> Any:
    """The payload `obj` (bytes of JSON, or what a decoder returned) as the contract's model."""
    model = contract.model
    if model is bytes:
        if not isinstance(obj, bytes):
            raise BadMessage(SCHEMA, f"the payload is {type(obj).__name__}, the model wants bytes")
        return obj
    if contract.is_model:
        assert model is not None
        try:
            if isinstance(obj, (bytes, str)) and not from_decoder:
                return model.model_validate_json(obj)
            return model.model_validate(obj)
        except ValidationError as exc:
            raise BadMessage(SCHEMA, describe_errors(exc.errors())) from None
        except Exception as exc:  # a validator of the user's model that raised something else
            raise BadMessage(SCHEMA, f"model {model.__name__} raised {type(exc).__name__}: {exc}") from None
    # dict (or no model): a JSON object
    if isinstance(obj, dict) and from_decoder:
        obj = _storable_dict(obj)
    elif isinstance(obj, bytes) and not from_decoder:
        parsed = parse_json(obj)
        if isinstance(parsed, dict) and depth_exceeds(obj, parsed, MAX_DEPTH):
            raise BadMessage(JSON_INVALID, f"invalid JSON: nested deeper than {MAX_DEPTH} levels")
        obj = parsed
    if not isinstance(obj, dict):
        raise BadMessage(SCHEMA, f"value must be a JSON object, got {type(obj).__name__}")
    return obj


def _key(contract: TopicContract, payload: Any, message: Any) -> str:
    """The idempotency key of `payload` (see the module docstring); BadMessage when unusable."""
    if contract.key is not None:
        try:
            key = contract.key(payload)
        except Exception as exc:
            raise BadMessage(KEY, f"key function raised {type(exc).__name__}: {exc}") from None
        return _checked_key(key, "the key function returned")
    if contract.model is bytes:
        key = decode_key(message.key)
        if key is None:
            raise BadMessage(KEY, "no key: the record has no UTF-8 Kafka key (declare key=...)")
        return _checked_key(key, "the Kafka key is")
    ident = payload.get("id") if isinstance(payload, dict) else getattr(payload, "id", None)
    if isinstance(ident, int) and not isinstance(ident, bool):
        ident = str(ident)
    if ident is None:
        raise BadMessage(KEY, "no key: the payload has no `id` (declare key=...)")
    return _checked_key(ident, "the payload's id is")


def _checked_key(key: object, what: str) -> str:
    if not isinstance(key, str):
        raise BadMessage(KEY, f"{what} {type(key).__name__}, not a string")
    if not 0 < len(key) <= ID_MAX_CHARS:
        raise BadMessage(KEY, f"{what} a string of {len(key)} characters; a key has 1-{ID_MAX_CHARS}")
    if "\x00" in key:
        raise BadMessage(KEY, f"{what} a string with NUL (\\u0000), which no key column holds")
    return key


def _occurred_at(contract: TopicContract, payload: Any, message: Any, fallback: datetime | None) -> datetime:
    """occurred_at(payload) in UTC, else `fallback`, else the record's timestamp."""
    value: object = None
    if contract.occurred_at is not None:
        try:
            value = contract.occurred_at(payload)
        except Exception as exc:
            raise BadMessage(SCHEMA, f"occurred_at function raised {type(exc).__name__}: {exc}") from None
        if value is not None and not isinstance(value, datetime):
            raise BadMessage(SCHEMA, f"occurred_at function returned {type(value).__name__}, not a datetime")
    if value is None:
        return fallback if fallback is not None else timestamp_of(message)
    assert isinstance(value, datetime)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise BadMessage(SCHEMA, "occurred_at: out of the representable range once converted to UTC") from None


def _data(payload: Any) -> dict[str, Any] | None:
    """The payload as the events row's JSON `data` (checked to be storable: no lone surrogate,
    only JSON types; a model's validators or a decoder may have put anything there)."""
    if isinstance(payload, BaseModel):
        try:
            data: Any = payload.model_dump(mode="json")
        except Exception as exc:
            raise BadMessage(SCHEMA, f"payload cannot be dumped as JSON: {type(exc).__name__}: {exc}") from None
    elif isinstance(payload, bytes):
        return {"base64": base64.b64encode(payload).decode("ascii")}
    else:
        data = payload
    if data is not None and not isinstance(data, dict):
        data = {"data": data}
    try:
        _encode(data)
    except (TypeError, ValueError, UnicodeEncodeError, OverflowError) as exc:
        raise BadMessage(SCHEMA, f"payload cannot be stored as JSON: {type(exc).__name__}: {exc}") from None
    return data  # type: ignore[no-any-return]


def _storable_dict(data: Any) -> Any:
    """A decoder's dict made plain JSON (datetimes to text, bytes to base64), or BadMessage."""
    try:
        return _roundtrip(_encode(data))
    except (TypeError, ValueError, UnicodeEncodeError, OverflowError, msgspec.DecodeError) as exc:
        raise BadMessage(SCHEMA, f"the decoded value is not JSON-storable: {type(exc).__name__}: {exc}") from None


def _cloudevent(contract: TopicContract, message: Any, value: bytes) -> tuple[PlainEvent, Any]:
    headers = list(getattr(message, "headers", None) or ())
    if cloudevents.is_structured(headers, value):
        raw = cloudevents.split_structured(parse_json(value))
    else:
        raw = cloudevents.split_binary(headers, value)
    ident, source, kind, time = cloudevents.check_attributes(raw.attributes)
    if raw.data_bytes is not None and contract.decoder is not None:
        data: Any = _run_decoder(contract, raw.data_bytes, message)
        from_decoder = True
    elif raw.data_bytes is not None and not raw.structured and contract.model is not bytes:
        content_type = raw.attributes.get("datacontenttype")
        data = parse_json(raw.data_bytes) if cloudevents.is_json_content(content_type) else raw.data_bytes
        from_decoder = True  # already parsed: validate the Python value
    else:
        data = raw.data_bytes if raw.data_bytes is not None else raw.data_json
        from_decoder = True
    if contract.model is None:
        validated = _storable_dict(data) if contract.decoder is not None else data
    else:
        validated = _validate(contract, data, from_decoder=from_decoder)
    event = cloudevents.build(raw, validated)
    key = _key(contract, event, message) if contract.key is not None else _cloudevent_key(source, ident)
    occurred_at = _occurred_at(contract, event, message, time)
    return PlainEvent(key, contract.type or kind, occurred_at, _data(validated)), event


def _cloudevent_key(source: str, ident: str) -> str:
    """`source:id`, or a digest of both when that is longer than the events id column."""
    key = f"{source}:{ident}"
    if len(key) <= ID_MAX_CHARS:
        return key
    digest = hashlib.sha256(f"{source}\n{ident}".encode("utf-8", "surrogatepass")).hexdigest()
    return f"ce:sha256:{digest}"
