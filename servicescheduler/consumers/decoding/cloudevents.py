"""CloudEvents 1.0 over Kafka (the Kafka protocol binding): structured and binary mode.

Structured mode: the value is the whole CloudEvent as JSON (header `content-type:
application/cloudevents+json`, or no `ce_specversion` header and a JSON object with
`specversion`); `data` is any JSON value, or `data_base64` bytes. Binary mode: the attributes are
`ce_<name>` headers, the value is `data` (JSON when `content-type` is absent or JSON, else bytes).

Required: `id`, `source`, `type`, `specversion` (non-empty strings, specversion "1.0"); `time`,
when present, is RFC 3339. Only these are read here; the contract turns the result into an event.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from servicescheduler.consumers.decoding.contracts import TYPE_MAX_CHARS, Headers
from servicescheduler.consumers.decoding.events import SCHEMA, BadMessage

STRUCTURED = "application/cloudevents+json"
REQUIRED = ("id", "source", "type", "specversion")
SPEC_VERSION = "1.0"
_NOT_EXTENSIONS = frozenset((*REQUIRED, "time", "subject", "datacontenttype", "dataschema", "data", "data_base64"))


@dataclass(frozen=True)
class CloudEvent:
    """A received CloudEvent: its attributes and its `data` (validated by the contract's model)."""

    id: str
    source: str
    type: str
    specversion: str
    time: datetime | None = None
    subject: str | None = None
    datacontenttype: str | None = None
    data: Any = None
    extensions: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RawCloudEvent:
    """The attributes of a CloudEvent and its still-undecoded data (`data_bytes` or `data_json`)."""

    attributes: dict[str, Any]
    data_json: Any = None
    data_bytes: bytes | None = None
    structured: bool = False


def header_text(headers: Headers | None, name: str) -> str | None:
    """The value of header `name` (case-insensitive) as text, or None."""
    for key, value in headers or ():
        if key.lower() == name and value is not None:
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return None


def is_structured(headers: Headers | None, value: bytes) -> bool:
    """Structured mode: the content type says so, or no ce_ header and the value looks like one."""
    content_type = header_text(headers, "content-type")
    if content_type is not None and content_type.split(";")[0].strip().lower() == STRUCTURED:
        return True
    if header_text(headers, "ce_specversion") is not None:
        return False
    return value[:1] == b"{" and b'"specversion"' in value


def split_binary(headers: Headers | None, value: bytes) -> RawCloudEvent:
    """Binary mode: attributes from `ce_*` headers (the content type is `content-type`)."""
    attributes: dict[str, Any] = {}
    for key, raw in headers or ():
        name = key.lower()
        if name.startswith("ce_") and raw is not None:
            attributes[name[3:]] = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    content_type = header_text(headers, "content-type")
    if content_type is not None:
        attributes["datacontenttype"] = content_type
    return RawCloudEvent(attributes, data_bytes=value)


def split_structured(document: Any) -> RawCloudEvent:
    """Structured mode: `document` is the parsed JSON value."""
    if not isinstance(document, dict):
        raise BadMessage(SCHEMA, f"a structured CloudEvent must be a JSON object, got {type(document).__name__}")
    attributes = {k: v for k, v in document.items() if k not in ("data", "data_base64")}
    if "data_base64" in document:
        encoded = document["data_base64"]
        try:
            data = base64.b64decode(encoded, validate=True) if isinstance(encoded, str) else None
        except (binascii.Error, ValueError):
            data = None
        if data is None:
            raise BadMessage(SCHEMA, "data_base64: not a base64 string")
        return RawCloudEvent(attributes, data_bytes=data, structured=True)
    return RawCloudEvent(attributes, data_json=document.get("data"), structured=True)


def check_attributes(attributes: dict[str, Any]) -> tuple[str, str, str, datetime | None]:
    """(id, source, type, time) after checking the required attributes; BadMessage otherwise."""
    missing = [name for name in REQUIRED if not isinstance(attributes.get(name), str) or not attributes[name]]
    if missing:
        raise BadMessage(SCHEMA, f"CloudEvent attribute {', '.join(missing)}: required, a non-empty string")
    if attributes["specversion"] != SPEC_VERSION:
        raise BadMessage(SCHEMA, f"CloudEvent specversion {attributes['specversion']!r} is not {SPEC_VERSION}")
    if len(attributes["type"]) > TYPE_MAX_CHARS:
        raise BadMessage(SCHEMA, f"CloudEvent attribute type: longer than {TYPE_MAX_CHARS} characters")
    for name in ("id", "source", "type"):
        if "\x00" in attributes[name]:
            raise BadMessage(SCHEMA, f"CloudEvent attribute {name}: must not contain NUL (\\u0000) characters")
    return attributes["id"], attributes["source"], attributes["type"], _time(attributes.get("time"))


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadMessage(SCHEMA, "CloudEvent attribute time: must be an RFC 3339 string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise BadMessage(SCHEMA, f"CloudEvent attribute time: {value[:64]!r} is not RFC 3339") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        raise BadMessage(SCHEMA, "CloudEvent attribute time: out of the representable range in UTC") from None


def build(raw: RawCloudEvent, data: Any) -> CloudEvent:
    """The CloudEvent of checked attributes and validated `data`."""
    a = raw.attributes
    ident, source, kind, time = check_attributes(a)
    extensions = {k: str(v) for k, v in a.items() if k not in _NOT_EXTENSIONS}
    subject, content_type = a.get("subject"), a.get("datacontenttype")
    return CloudEvent(
        ident,
        source,
        kind,
        a["specversion"],
        time,
        subject if isinstance(subject, str) else None,
        content_type if isinstance(content_type, str) else None,
        data,
        extensions,
    )


def is_json_content(content_type: str | None) -> bool:
    """JSON data: no content type, `application/json`, or any `+json` type."""
    if content_type is None:
        return True
    media = content_type.split(";")[0].strip().lower()
    return media == "application/json" or media.endswith("+json") or media == "text/json"
