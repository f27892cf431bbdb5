"""405 answers that name every method the path allows.

Starlette answers 405 from the first route whose path matches, so `Allow` lists only that
route's methods (GET /tasks/{name} hides PATCH /tasks/{name}). This handler asks the
router which methods would fully match the path.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match

CANDIDATES = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


async def method_not_allowed(request: Request, exc: Exception) -> JSONResponse:
    """Exception handler for 405: `Allow` and the detail list the methods of every matching route."""
    allowed = {method for method in CANDIDATES if _routed(request, method)}
    if not allowed and isinstance(exc, HTTPException) and exc.headers:
        allowed = {m.strip() for m in exc.headers.get("Allow", "").split(",") if m.strip()}
    methods = ", ".join(sorted(allowed))
    detail = f"method {request.method} is not allowed on {request.scope['path']}; allowed: {methods}"
    return JSONResponse({"detail": detail}, 405, headers={"Allow": methods})


def _routed(request: Request, method: str) -> bool:
    """True when some route fully matches the request's path with `method` (routers included)."""
    probe = {**request.scope, "method": method}
    return any(route.matches(probe)[0] == Match.FULL for route in request.app.router.routes)
