"""FastAPI dependencies: the running service behind a bound route, and the actor of a mutation.

A route bound to a ServiceScheduler (api/binding.py) finds its instance in the ASGI scope under
`SCOPE_KEY`; `get_application` answers its running parts, or 503 before start / after stop.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request, status
from fastapi.exceptions import HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from servicescheduler.service import Application

if TYPE_CHECKING:
    from servicescheduler.embedding import ServiceScheduler

SCOPE_KEY = "servicescheduler"
bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <ADMIN_TOKEN>")


class NotRunning(RuntimeError):
    """A route of a ServiceScheduler that is not running (not started yet, or stopped): 503."""


def get_service(request: Request) -> ServiceScheduler:
    """The ServiceScheduler whose route this is."""
    service: ServiceScheduler | None = request.scope.get(SCOPE_KEY)
    if service is None:
        raise RuntimeError("route not bound to a ServiceScheduler: include scheduler.router, not the route modules")
    return service


async def get_application(request: Request) -> Application:
    """The running parts of this route's ServiceScheduler. `async`: FastAPI runs a plain `def`
    dependency in its thread pool, a round trip between threads (each waiting for the GIL) for
    what is an attribute read."""
    return get_service(request).application


AppDep = Annotated[Application, Depends(get_application)]


def token_matches(expected: str, presented: str) -> bool:
    """Constant-time comparison of two tokens."""
    return secrets.compare_digest(expected.encode(), presented.encode())


def verify_token(request: Request, credentials: HTTPAuthorizationCredentials | None) -> str:
    """Checks the bearer token in constant time; returns the actor name for the audit log."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing bearer token: send Authorization: Bearer <ADMIN_TOKEN>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not token_matches(get_service(request).application.admin_token, credentials.credentials):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "invalid bearer token", headers={"WWW-Authenticate": "Bearer"}
        )
    return "admin"


async def check_token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> str:
    """The actor of a mutation (verify_token), checked on the event loop: no I/O, no thread hop."""
    return verify_token(request, credentials)


# The actor of a mutation. Bound routes of an instance built with `auth=` depend on that instead.
AdminDep = Annotated[str, Depends(check_token)]
