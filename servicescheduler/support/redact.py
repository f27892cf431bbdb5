"""Redaction of texts shown to people who may not see everything: passwords inside URLs, SQL
parameters and the rows a database quotes back in its error details.

Error texts reach unauthenticated routes (run history, /consumer, /ready, /health); the full
text stays in the service log, which only operators read.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar, cast

T = TypeVar("T")

PUBLIC_ERROR_MAX_CHARS = 500
# scheme://user:password@host -> scheme://user:***@host (user optional, password any non-@ run).
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@]*:)[^@\s/]*(?P<at>@)")
# SQLAlchemy appends the bound values as "[parameters: ...]" (one line, possibly long).
_SQL_PARAMETERS = re.compile(r"\[parameters: .*?\](?=\n|$)", re.DOTALL)
# pydantic's messages quote the rejected input: "[type=..., input_value='...', input_type=str]".
_PYDANTIC_INPUT = re.compile(r"input_value=.*?, input_type=")
# PostgreSQL's DETAIL/CONTEXT/HINT lines quote row values (e.g. "Key (id)=(...) already exists").
_DATA_LINES = re.compile(r"^\s*(DETAIL|CONTEXT|HINT|LINE \d+):.*$", re.MULTILINE)


def mask_url_passwords(text: str) -> str:
    """`text` with the password of every URL in it replaced by `***`."""
    return _URL_PASSWORD.sub(r"\g<head>***\g<at>", text)


def public_error(text: str | None, limit: int = PUBLIC_ERROR_MAX_CHARS) -> str | None:
    """An error text fit for an unauthenticated reader: no SQL parameters, no quoted row data or
    input values, no URL passwords, at most `limit` characters."""
    if text is None:
        return None
    cleaned = _SQL_PARAMETERS.sub("[parameters hidden]", text)
    cleaned = _DATA_LINES.sub("", cleaned)
    cleaned = _PYDANTIC_INPUT.sub("input_value=(hidden), input_type=", cleaned)
    cleaned = mask_url_passwords(cleaned)
    cleaned = re.sub(r"\n{2,}", "\n", cleaned).strip()
    if len(cleaned) > limit:
        cleaned = cleaned[: limit - 1] + "…"
    return cleaned


def scrub_errors(value: T) -> T:
    """A copy of a JSON-like value in which every string under a key naming an error, a reason
    or a detail has been passed through `public_error`."""
    return cast(T, _scrub(value))


def _scrub(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: (public_error(item) if isinstance(item, str) and _is_error_key(key) else _scrub(item))
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_scrub(item) for item in value]
    return value


def _is_error_key(key: object) -> bool:
    return isinstance(key, str) and any(word in key for word in ("error", "reason", "detail"))
