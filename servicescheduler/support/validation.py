"""pydantic validation errors as one readable sentence (HTTP 422 details, settings, dead letters)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

Location = Sequence[int | str]


def dotted(location: Location) -> str:
    """`("body", "interval_seconds")` → `body.interval_seconds` (`value` for the whole input)."""
    return ".".join(str(part) for part in location) or "value"


def describe_errors(
    errors: Sequence[Any],
    name: Callable[[Location], str] = dotted,
    fallback: str = "invalid input",
    extra: Callable[[Any], str] | None = None,
) -> str:
    """`field: message; other: message`: one clause per pydantic error, fields named by `name(loc)`,
    each followed by `extra(error)` when given."""
    parts = [
        f"{name(tuple(error.get('loc', ())))}: {error.get('msg')}{extra(error) if extra else ''}" for error in errors
    ]
    return "; ".join(parts) or fallback
