"""FastAPI dependencies: the runtime, settings, a read session and the admin check."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from api.auth import token_matches
from runtime import AppRuntime
from settings import Settings

bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <ADMIN_TOKEN>")


def get_runtime(request: Request) -> AppRuntime:
    """The AppRuntime this app was built with."""
    return request.app.state.runtime


RuntimeDep = Annotated[AppRuntime, Depends(get_runtime)]


def get_settings(runtime: RuntimeDep) -> Settings:
    """The settings this app was built with (injected, never a global)."""
    return runtime.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_read_session(runtime: RuntimeDep) -> Iterator[Session]:
    """A read-only session for one request."""
    with runtime.database.read_session() as session:
        yield session


ReadSessionDep = Annotated[Session, Depends(get_read_session)]


def require_admin(runtime: RuntimeDep,
                  credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> str:
    """Checks the bearer token in constant time; returns the actor name for the audit log."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing bearer token: send Authorization: Bearer <ADMIN_TOKEN>",
                            headers={"WWW-Authenticate": "Bearer"})
    if not token_matches(runtime.admin_token, credentials.credentials):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid bearer token",
                            headers={"WWW-Authenticate": "Bearer"})
    return "admin"


AdminDep = Annotated[str, Depends(require_admin)]
