"""Request-body limit: a pure ASGI middleware that counts bytes as the app reads them.

It never reads a body itself: a route that does not read its body (or refuses the request
first, e.g. 401 without a token) costs nothing. When the app reads, a declared Content-Length
above the limit is refused before a byte is taken, and a streamed (chunked) body is cut off as
soon as the running total passes the limit, before anything is parsed.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    """413: raised inside the app's `receive()`, so FastAPI renders it as `{"detail": ...}`."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            413, f"request body exceeds MAX_REQUEST_BYTES ({limit} bytes)", headers={"Connection": "close"}
        )  # the rest of the body is never read


class RequestBodyLimit:
    """Refuses request bodies over `max_bytes` with 413 while they stream in."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            if declared is not None and declared > self.max_bytes:
                raise BodyTooLarge(self.max_bytes)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as exc:  # read outside a route (e.g. by a middleware)
            if started:
                raise
            response = JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)
            await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
