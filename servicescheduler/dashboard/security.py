"""SecurityHeaders: the browser-side defences of the dashboard, as a pure ASGI middleware.

The dashboard renders operator-supplied and event-supplied text (task errors, dead-letter
values). Escaping keeps that text inert; the Content-Security-Policy is the second line: even a
value that slipped through could run no script and load nothing, since the page may only use its
own static files. Nothing of it needs inline code: htmx is told not to evaluate strings nor to
inject its indicator styles (static/dashboard.js), and the favicon is a `data:` URL.

`frame-ancestors 'none'` (with X-Frame-Options for older browsers) refuses framing, so the
controls cannot be click-jacked. Pure ASGI rather than BaseHTTPMiddleware: it wraps whatever
app the host mounts (streaming responses included) and adds no task per request.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",  # the favicon is `data:,` (no request for /favicon.ico)
        "connect-src 'self'",  # htmx fragments and the JSON API the controls call
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)

SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
)


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every HTTP response of `app` that does not set them itself
    (a route may need its own policy); other scopes (lifespan, websocket) pass through."""

    def __init__(self, app: ASGIApp, headers: tuple[tuple[str, str], ...] = SECURITY_HEADERS) -> None:
        self.app = app
        self._headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self._headers:
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
