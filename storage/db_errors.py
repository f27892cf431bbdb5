"""Which database failures are transient: worth retrying unchanged, as opposed to a row the
database refuses for good (which retrying would only repeat forever)."""

from __future__ import annotations

import sqlite3

from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout


def is_transient_db_error(exc: BaseException) -> bool:
    """True for failures that go away by themselves (locked, unreachable, pool exhausted)."""
    if isinstance(exc, (OperationalError, InterfaceError, DisconnectionError, PoolTimeout)):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, sqlite3.OperationalError)
