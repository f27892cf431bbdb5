"""Unhandled errors: a pure ASGI middleware that turns any exception escaping a route into a
JSON 500 `{"detail": ...}` and one structured log line.

The answer names an error id to quote, never the exception: its text may hold internals.
The log line carries the type, the message and the traceback, URL passwords masked.
"""

from __future__ import annotations

import secrets
import traceback

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from logs import get_logger
from redact import mask_url_passwords, public_error

log = get_logger(__name__)


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
