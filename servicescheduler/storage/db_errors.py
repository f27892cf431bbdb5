"""Which database failures are which: transient (worth retrying unchanged), caused by a row's
values (a message or record the database refuses for good: isolate it, never retry it forever),
or the system's own (missing table, permissions: stop, do not blame the data)."""

from __future__ import annotations

import sqlite3

from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout


def _driver_errors() -> tuple[type[Exception], ...]:
    """The drivers' own base exception classes: sqlite3's, and psycopg's when it is installed
    (the `postgres` extra; without it no PostgreSQL error can occur)."""
    try:
        import psycopg
    except ImportError:
        return (sqlite3.Error,)
    return (sqlite3.Error, psycopg.Error)


_DRIVER_ERRORS = _driver_errors()
_DRIVER_TRANSIENT = frozenset({"OperationalError", "InterfaceError"})
_DRIVER_MESSAGE = frozenset({"DataError", "IntegrityError"})


def _driver_class(exc: BaseException) -> set[str]:
    """The PEP 249 class names of a driver exception (empty for anything else)."""
    if not isinstance(exc, _DRIVER_ERRORS):
        return set()
    return {cls.__name__ for cls in type(exc).__mro__}


def is_db_error(exc: BaseException) -> bool:
    """True for any database error, wrapped by SQLAlchemy or raised by the driver itself."""
    return isinstance(exc, (DBAPIError, *_DRIVER_ERRORS))


def is_transient_db_error(exc: BaseException) -> bool:
    """True for failures that go away by themselves (locked, unreachable, pool exhausted)."""
    if isinstance(exc, (OperationalError, InterfaceError, DisconnectionError, PoolTimeout)):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return bool(_driver_class(exc) & _DRIVER_TRANSIENT)


def is_message_error(exc: BaseException) -> bool:
    """True when the failure comes from the values of the rows (so from a message), not the system.

    DataError/IntegrityError: the database refused a value. Any other database error (missing
    table, permissions, internal) is the system's: dead-lettering every message for it would
    empty the topic into the dead-letter table. Errors raised before the driver (binding a
    value, serializing JSON) belong to a value too.
    """
    if is_transient_db_error(exc):
        return False
    if isinstance(exc, (DataError, IntegrityError)) or _driver_class(exc) & _DRIVER_MESSAGE:
        return True
    return not is_db_error(exc)
