"""FastAPI dependencies: the application (settings, scheduler, consumer) and the admin check."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from servicescheduler.service import Application

bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <ADMIN_TOKEN>")


def get_application(request: Request) -> Application:
    """The Application this app was built with."""
    application: Application = request.app.state.application
    return application


AppDep = Annotated[Application, Depends(get_application)]


def token_matches(expected: str, presented: str) -> bool:
    """Constant-time comparison of two tokens."""
    return secrets.compare_digest(expected.encode(), presented.encode())


def require_admin(
    application: AppDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> str:
    """Checks the bearer token in constant time; returns the actor name for the audit log."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing bearer token: send Authorization: Bearer <ADMIN_TOKEN>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not token_matches(application.admin_token, credentials.credentials):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "invalid bearer token", headers={"WWW-Authenticate": "Bearer"}
        )
    return "admin"


AdminDep = Annotated[str, Depends(require_admin)]
