"""Exception → text for run records and log lines, built so that it can never raise.

A task may raise anything: an exception whose `__str__` (and `__repr__`) raises, a BaseException
subclass, a 10 MB message. Formatting such an exception inside the handler that caught it used to
raise again and take the whole finished path (outcome, lease release) down with it; the helpers
here fall back instead, and cut the text to a size a history row and a log line can carry.
"""

from __future__ import annotations

import traceback

ERROR_TEXT_LIMIT = 4_000  # characters of a run's error text ("TypeName: message")
TRACEBACK_LIMIT = 20_000  # characters of a traceback in a log line (head and tail kept)


def _type_name(exc: BaseException) -> str:
    try:
        name = type(exc).__name__
        return name if isinstance(name, str) else "exception"
    except BaseException:  # a metaclass may do anything
        return "exception"


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit} more characters cut]"


def exception_text(exc: BaseException, limit: int = ERROR_TEXT_LIMIT) -> str:
    """`TypeName: message`, at most about `limit` characters; `<unprintable TypeName>` when the
    exception cannot be turned into text. Never raises."""
    name = _type_name(exc)
    try:
        # str.__str__ turns a str subclass (whose methods a task may override) into a plain str.
        message = str.__str__(str(exc))
    except BaseException:  # even SystemExit from a __str__: this runs inside an error handler
        return f"<unprintable {name}>"
    return _cut(f"{name}: {message}" if message else name, limit)


def traceback_text(exc: BaseException, limit: int = TRACEBACK_LIMIT) -> str:
    """The formatted traceback of `exc`, its head and tail kept within about `limit` characters
    (the last line holds the message, which may be huge). Never raises."""
    try:
        text = "".join(traceback.format_exception(exc))
    except BaseException:
        return f"<traceback of {_type_name(exc)} could not be formatted>"
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n… [{len(text) - 2 * half} characters cut] …\n{text[-half:]}"
