"""Routes bound to one ServiceScheduler, carrying their own error mapping and body limit.

The route modules (`tasks`, `consumer`, `cluster`, `system`, the dashboard's pages) declare
their routes once, at module level. `bind_routes()` copies them onto a new `APIRouter` whose
route class is made for one service instance, so:

- a request reaching one of them finds its service in the ASGI scope (`SCOPE_KEY`), which is how
  `deps.get_application` resolves it: two instances in one host app never see each other;
- errors are mapped here, for these routes only (domain errors, validation as one sentence, a
  database outage as 503, anything else as a JSON 500 naming an error id), and the body limit
  (MAX_REQUEST_BYTES) counts the bytes these routes read: the host app's own routes, middleware
  and exception handlers are untouched;
- mutations ask for the actor: the instance's bearer token (checked before the body is read), or
  the host's `auth` dependency, swapped into the endpoints' signatures at bind time so that
  FastAPI resolves it (and its own sub-dependencies) like any other dependency.

The bound routes keep their class through the host's `include_router`, which is what carries the
binding into the host app.
"""

from __future__ import annotations

import functools
import inspect
import secrets
import traceback
from collections.abc import Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from fastapi import APIRouter, Depends, Request, status
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import Message

from servicescheduler.api.body_limit import BodyTooLarge
from servicescheduler.api.deps import SCOPE_KEY, AdminDep, NotRunning, bearer, check_token, verify_token
from servicescheduler.logs import get_logger
from servicescheduler.scheduling.errors import (
    CoordinationUnavailable,
    InvalidTask,
    TaskBusy,
    TaskConflict,
    UnknownTask,
)
from servicescheduler.support.redact import mask_url_passwords, public_error
from servicescheduler.support.validation import describe_errors

if TYPE_CHECKING:
    from servicescheduler.embedding import ServiceScheduler

log = get_logger(__name__)

RETRY_AFTER_SECONDS = 5
# APIRoute attributes that describe a route; copied as they are onto the bound route.
_ROUTE_OPTIONS = (
    "response_model",
    "status_code",
    "tags",
    "dependencies",
    "summary",
    "description",
    "response_description",
    "responses",
    "deprecated",
    "name",
    "methods",
    "operation_id",
    "response_model_include",
    "response_model_exclude",
    "response_model_by_alias",
    "response_model_exclude_unset",
    "response_model_exclude_defaults",
    "response_model_exclude_none",
    "include_in_schema",
    "response_class",
    "callbacks",
    "openapi_extra",
)


class ServiceRoute(APIRoute):
    """An APIRoute of one ServiceScheduler (subclassed per instance by `bind_routes`)."""

    service: ClassVar[ServiceScheduler]

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        service = self.service
        # The token is checked before FastAPI reads and parses the body, so a client without it
        # cannot make the server read up to MAX_REQUEST_BYTES only to get 401.
        token_first = service.auth is None and _depends_on(self.dependant, check_token)

        async def bound(request: Request) -> Response:
            request.scope[SCOPE_KEY] = service
            _limit_body(request, service.settings.max_request_bytes)
            try:
                if token_first:
                    verify_token(request, await bearer(request))
                return await handler(request)
            except Exception as exc:
                return _error_response(request, exc)

        return bound


def bind_routes(
    service: ServiceScheduler, routers: Iterable[APIRouter], *, include_in_schema: bool = True
) -> APIRouter:
    """A new router with every route of `routers`, bound to `service`."""
    route_class = type("ServiceRoute", (ServiceRoute,), {"service": service})
    actor = _actor_dependency(service.auth) if service.auth is not None else None
    bound = APIRouter(route_class=route_class)
    for router in routers:
        for route in router.routes:
            if not isinstance(route, APIRoute):
                raise TypeError(f"cannot bind {route!r}: only API routes are bound")
            options = {option: getattr(route, option) for option in _ROUTE_OPTIONS}
            options["include_in_schema"] = route.include_in_schema and include_in_schema
            endpoint = route.endpoint if actor is None else _with_actor(route.endpoint, actor)
            bound.add_api_route(route.path, endpoint, route_class_override=route_class, **options)
    return bound


def _actor_dependency(auth: Callable[..., Any]) -> Callable[..., str]:
    """The host's auth dependency, its answer as the actor's name for the audit log."""

    def actor(value: Any) -> str:
        return value if isinstance(value, str) else str(value)

    # Set as an object, not as an annotation string: `auth` is a local name FastAPI cannot resolve.
    parameter = inspect.Parameter(
        "value", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Annotated[Any, Depends(auth)]
    )
    actor.__signature__ = inspect.Signature([parameter], return_annotation=str)  # type: ignore[attr-defined]
    return actor


def _with_actor(endpoint: Callable[..., Any], actor: Callable[..., str]) -> Callable[..., Any]:
    """`endpoint` with its `AdminDep` parameter depending on `actor` instead (same behaviour)."""
    signature = inspect.signature(endpoint, eval_str=True)
    if not any(parameter.annotation == AdminDep for parameter in signature.parameters.values()):
        return endpoint
    parameters = [
        parameter.replace(annotation=Annotated[str, Depends(actor)]) if parameter.annotation == AdminDep else parameter
        for parameter in signature.parameters.values()
    ]
    wrapper: Callable[..., Any]
    if inspect.iscoroutinefunction(endpoint):

        @functools.wraps(endpoint)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            return await endpoint(*args, **kwargs)

    else:

        @functools.wraps(endpoint)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return endpoint(*args, **kwargs)

    wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    return wrapper


def _depends_on(dependant: Dependant, call: Callable[..., Any]) -> bool:
    return any(sub.call is call or _depends_on(sub, call) for sub in dependant.dependencies)


def _limit_body(request: Request, max_bytes: int) -> None:
    """Counts the body as the route reads it: over `max_bytes`, 413 before anything is parsed."""
    declared = _content_length(request)
    receive = request.receive
    received = 0

    async def limited_receive() -> Message:
        nonlocal received
        if declared is not None and declared > max_bytes:
            raise BodyTooLarge(max_bytes)
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > max_bytes:
                raise BodyTooLarge(max_bytes)
        return message

    request._receive = limited_receive  # the handler reads the body through this request


def _content_length(request: Request) -> int | None:
    try:
        return int(request.headers["content-length"])
    except (KeyError, ValueError):
        return None


def _error_response(request: Request, exc: Exception) -> Response:
    """The JSON answer `{"detail": "<sentence>"}` for whatever a bound route raised."""
    if isinstance(exc, HTTPException):
        return JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)
    if isinstance(exc, RequestValidationError):
        detail = describe_errors(exc.errors(), fallback="invalid request")
        return JSONResponse({"detail": detail}, status.HTTP_422_UNPROCESSABLE_CONTENT)
    for kind, code in (
        (UnknownTask, status.HTTP_404_NOT_FOUND),
        (TaskBusy, status.HTTP_409_CONFLICT),
        (TaskConflict, status.HTTP_409_CONFLICT),
        (InvalidTask, status.HTTP_422_UNPROCESSABLE_CONTENT),
        (CoordinationUnavailable, status.HTTP_503_SERVICE_UNAVAILABLE),
        (NotRunning, status.HTTP_503_SERVICE_UNAVAILABLE),
    ):
        if isinstance(exc, kind):
            return JSONResponse({"detail": str(exc)}, code)
    if isinstance(exc, OperationalError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated):
        # A database outage is the server's temporary state, not a bug: 503 with Retry-After.
        log.warning(
            "http_database_unavailable",
            method=request.method,
            path=request.url.path,
            error_type=type(exc).__name__,
            error=public_error(str(exc)),
        )
        return JSONResponse(
            {"detail": "the database is unavailable; try again shortly"},
            status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    error_id = secrets.token_hex(6)
    log.error(
        "http_unhandled_error",
        error_id=error_id,
        method=request.method,
        path=request.url.path,
        error_type=type(exc).__name__,
        error=public_error(str(exc)),
        traceback=mask_url_passwords(traceback.format_exc()),
    )
    # The answer names an error id to quote, never the exception: its text may hold internals.
    detail = f"internal server error (error id {error_id}); the service log has the details"
    return JSONResponse({"detail": detail}, status.HTTP_500_INTERNAL_SERVER_ERROR)
