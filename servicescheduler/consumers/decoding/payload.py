"""Checks on a parsed JSON payload that a schema cannot express: nesting depth, unpaired surrogates.

Both walk iteratively (an explicit stack), so a payload nested thousands of levels deep cannot
exhaust the interpreter's recursion limit while being checked.
"""

from __future__ import annotations

from typing import Any


def depth_exceeds(raw: bytes, payload: Any, limit: int) -> bool:
    """True when `payload` nests containers deeper than `limit` levels.

    The bracket count of the raw bytes bounds the depth from above: typical events answer from
    two C-speed byte counts without walking anything.
    """
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    stack: list[tuple[Any, int]] = [(payload, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(value, dict):
            stack.extend((child, depth + 1) for child in value.values() if isinstance(child, (dict, list)))
        elif isinstance(value, list):
            stack.extend((child, depth + 1) for child in value if isinstance(child, (dict, list)))
    return False


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def find_unpaired_surrogate(payload: Any) -> str | None:
    """The dotted path of the first string (or key) holding an unpaired UTF-16 surrogate, else None.

    JSON allows `"\\ud800"`; UTF-8, and so every database column, does not.
    """
    stack: list[tuple[Any, str]] = [(payload, "value")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            if _has_surrogate(value):
                return path
        elif isinstance(value, dict):
            for key, child in value.items():
                if _has_surrogate(key):
                    return f"a key of {path}"
                stack.append((child, key if path == "value" else f"{path}.{key}"))
        elif isinstance(value, list):
            stack.extend((child, f"{path}[{index}]") for index, child in enumerate(value))
    return None
