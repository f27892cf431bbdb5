"""Unhandled errors: a pure ASGI middleware that turns any exception escaping a route into a
JSON 500 `{"detail": ...}` and one structured log line (a database outage into a 503).

The answer names an error id to quote, never the exception: its text may hold internals.
The log line carries the type, the message and the traceback, URL passwords masked.
"""

from __future__ import annotations

import secrets
import traceback

from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from servicescheduler.logs import get_logger
from servicescheduler.support.redact import mask_url_passwords, public_error

log = get_logger(__name__)

RETRY_AFTER_SECONDS = 5


class UnhandledErrors:
    """Catches what no exception handler took; answers 500 JSON if no response has started."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if _database_outage(exc):
                await self._unavailable(scope, receive, send, exc, started)
                return
            error_id = secrets.token_hex(6)
            log.error(
                "http_unhandled_error",
                error_id=error_id,
                method=scope.get("method"),
                path=scope.get("path"),
                error_type=type(exc).__name__,
                error=public_error(str(exc)),
                response_started=started,
                traceback=mask_url_passwords(traceback.format_exc()),
            )
            if started:
                return  # the client sees a cut-off response; nothing more can be said
            detail = f"internal server error (error id {error_id}); the service log has the details"
            await JSONResponse({"detail": detail}, 500)(scope, receive, send)

    @staticmethod
    async def _unavailable(scope: Scope, receive: Receive, send: Send, exc: Exception, started: bool) -> None:
        """A database outage is the server's temporary state, not a bug: 503 with Retry-After."""
        log.warning(
            "http_database_unavailable",
            method=scope.get("method"),
            path=scope.get("path"),
            error_type=type(exc).__name__,
            error=public_error(str(exc)),
        )
        if not started:
            detail = "the database is unavailable; try again shortly"
            await JSONResponse({"detail": detail}, 503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})(
                scope, receive, send
            )


def _database_outage(exc: Exception) -> bool:
    """Connection refused or lost, server shutting down, SQLite busy past its timeout."""
    return isinstance(exc, OperationalError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated)
