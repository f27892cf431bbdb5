"""FastAPI app and lifespan: `uvicorn server:app` serves the API and runs the scheduler."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from api.body_limit import RequestBodyLimit
from api.errors import UnhandledErrors
from api.method_not_allowed import method_not_allowed
from logs import configure_logging, get_logger
from registry import TaskRegistry
from runtime import AppRuntime
from settings import Settings, get_settings

log = get_logger(__name__)


def _validation_detail(exc: RequestValidationError) -> str:
    """One readable sentence per invalid field, e.g. `body.interval_seconds: Input should be ...`."""
    parts = []
    for error in exc.errors():
        location = ".".join(str(p) for p in error.get("loc", ()))
        parts.append(f"{location}: {error.get('msg')}")
    return "; ".join(parts) or "invalid request"


def create_app(settings: Settings | None = None, registry: TaskRegistry | None = None) -> FastAPI:
    """Builds the app around an AppRuntime; tests pass their own settings and registry."""
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_format)
    if registry is None:
        import services  # noqa: F401  (registers the built-in tasks)
        from registry import tasks as registry
    runtime = AppRuntime(settings, registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(runtime.start)
        try:
            yield
        finally:
            await run_in_threadpool(runtime.stop)

    app = FastAPI(title="ServiceScheduler", version="1.0.0", lifespan=lifespan,
                  description="Periodic tasks and a Kafka consumer inside one FastAPI service.")
    app.state.runtime = runtime
    # Added innermost first: UnhandledErrors wraps everything, including the body limit.
    app.add_middleware(RequestBodyLimit, max_bytes=settings.max_request_bytes)
    app.add_middleware(UnhandledErrors)

    app.add_exception_handler(405, method_not_allowed)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_detail(exc)}, status_code=422)

    from api import consumer, system, tasks

    app.include_router(system.router)
    app.include_router(tasks.router)
    app.include_router(consumer.router)
    return app


def __getattr__(name: str) -> FastAPI:
    """`server.app` is built on first access (uvicorn server:app), so importing this module for
    create_app() neither reads the environment nor creates files."""
    if name != "app":
        raise AttributeError(name)
    from settings import SettingsError

    try:
        application = create_app()
    except SettingsError as exc:
        # One clear line naming the variable, not a pydantic traceback.
        raise SystemExit(f"configuration error: {exc}") from None
    globals()["app"] = application
    return application
