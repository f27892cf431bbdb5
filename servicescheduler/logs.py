"""Structured logging that a library may do: events go to standard-library loggers named
`servicescheduler.<module>`, and nothing here configures logging unless asked.

Every module logs `log.info("event_name", key=value, ...)` through `get_logger(__name__)`. The
logger is bound with its own processor chain (not structlog's global configuration, which
belongs to the host): the record's message is the event name and the fields travel in
`record.servicescheduler` (one attribute, so no field can collide with a LogRecord attribute such
as `name` or `process`). A host with plain logging sees the event names at the levels it set; a
host with a structured formatter reads the fields from that attribute (`flatten_fields` does it
for structlog's ProcessorFormatter).

`configure_logging()` is for programs, not for the library: the reference service (server.py)
and the command line call it to print JSON lines (or text) on stdout, every logger of the
process (uvicorn, kafka-python, SQLAlchemy) in one format.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

FIELDS_ATTRIBUTE = "servicescheduler"
HANDLER_NAME = "service-scheduler"


def _to_stdlib(_: WrappedLogger, __: str, event_dict: EventDict) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Last processor: (event name,) as the message, the fields as one `extra` attribute."""
    event = str(event_dict.pop("event", ""))
    kwargs: dict[str, Any] = {"extra": {FIELDS_ATTRIBUTE: event_dict}}
    for key in ("exc_info", "stack_info"):
        if key in event_dict:
            kwargs[key] = event_dict.pop(key)
    return (event,), kwargs


_LIBRARY_PROCESSORS: list[Processor] = [structlog.contextvars.merge_contextvars, _to_stdlib]


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structured logger writing to the standard-library logger `name` (a module path)."""
    logger: structlog.stdlib.BoundLogger = structlog.wrap_logger(
        logging.getLogger(name),
        processors=_LIBRARY_PROCESSORS,
        wrapper_class=structlog.stdlib.BoundLogger,
        context_class=dict,
        cache_logger_on_first_use=True,
    )
    return logger


def flatten_fields(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """ProcessorFormatter step: a library record's fields become top-level keys of the line."""
    record = event_dict.get("_record")
    fields = getattr(record, FIELDS_ATTRIBUTE, None)
    if isinstance(fields, MutableMapping):
        for key, value in fields.items():
            event_dict.setdefault(key, value)
    return event_dict


_SHARED_PROCESSORS: list[Processor] = [
    structlog.contextvars.merge_contextvars,
    flatten_fields,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


class _StdoutHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever `sys.stdout` is at emit time (it is swapped by test runners and
    redirections after logging was configured)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout
        super().emit(record)


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    """For programs (the reference service, the CLI): one root handler printing every logger of
    the process as JSON lines (or text) on stdout. Safe to call more than once."""
    renderer = structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    exception_processors = [structlog.processors.format_exc_info] if fmt == "json" else []
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_SHARED_PROCESSORS,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *exception_processors,
            renderer,
        ],
    )
    handler = _StdoutHandler(sys.stdout)
    handler.setFormatter(formatter)
    handler.set_name(HANDLER_NAME)
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == HANDLER_NAME:
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # kafka-python logs every reconnect attempt at WARNING/ERROR; the consumer status reports
    # broker reachability itself, so keep the client's own chatter to real problems.
    logging.getLogger("kafka").setLevel(max(logging.getLevelName(level), logging.WARNING))
    # httpx logs every request at INFO: one line per webhook delivery is ours to write.
    logging.getLogger("httpx").setLevel(max(logging.getLevelName(level), logging.WARNING))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
