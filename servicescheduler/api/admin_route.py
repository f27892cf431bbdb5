"""Routes that need the admin token check it before FastAPI reads the request body.

FastAPI reads and parses a route's body before it resolves dependencies, so a client without
the token could make the server read (up to MAX_REQUEST_BYTES) and parse a body only to get 401.
`AdminFirstRoute` runs the same check as the `AdminDep` dependency first.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from servicescheduler.api.deps import bearer, get_application, require_admin


class AdminFirstRoute(APIRoute):
    """An APIRoute that, when it depends on `require_admin`, checks the token before the body."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if not _depends_on(self.dependant, require_admin):
            return handler

        async def admin_first(request: Request) -> Response:
            require_admin(get_application(request), await bearer(request))  # raises 401
            return await handler(request)

        return admin_first


def _depends_on(dependant: Dependant, call: Callable[..., Any]) -> bool:
    return any(sub.call is call or _depends_on(sub, call) for sub in dependant.dependencies)
