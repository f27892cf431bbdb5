"""FastAPI app and lifespan: `uvicorn server:app` serves the API and runs the scheduler."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from servicescheduler.api.body_limit import RequestBodyLimit
from servicescheduler.api.errors import UnhandledErrors
from servicescheduler.api.method_not_allowed import method_not_allowed
from servicescheduler.logs import configure_logging, get_logger
from servicescheduler.scheduling.errors import CoordinationUnavailable, TaskBusy, UnknownTask
from servicescheduler.scheduling.registry import TaskRegistry
from servicescheduler.scheduling.registry import tasks as declared_tasks
from servicescheduler.service import Application, StartupError, build_registry
from servicescheduler.settings import Settings, SettingsError, get_settings
from servicescheduler.support.validation import describe_errors

log = get_logger(__name__)


def create_app(settings: Settings | None = None, registry: TaskRegistry | None = None) -> FastAPI:
    """Builds the app around an Application; tests pass their own settings and registry.

    Without a registry, the built-in tasks (BUILTIN_TASKS) and the modules of TASK_MODULES are
    imported and their tasks served.
    """
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_format)
    if registry is None:
        registry = build_registry(settings, declared_tasks)
    application = Application(settings, registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(application.start)
        try:
            yield
        finally:
            await run_in_threadpool(application.stop)

    app = FastAPI(
        title="ServiceScheduler",
        version="1.0.0",
        lifespan=lifespan,
        description="Periodic tasks and a Kafka consumer inside one FastAPI service.",
    )
    app.state.application = application
    # Added innermost first: UnhandledErrors wraps everything, including the body limit.
    app.add_middleware(RequestBodyLimit, max_bytes=settings.max_request_bytes)
    app.add_middleware(UnhandledErrors)
    _map_errors(app)

    from servicescheduler.api import cluster, consumer, system, tasks
    from servicescheduler.dashboard import STATIC_DIR
    from servicescheduler.dashboard import routes as dashboard

    app.include_router(system.router)
    app.include_router(tasks.router)
    app.include_router(consumer.router)
    app.include_router(dashboard.router)
    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="dashboard-static")
    app.include_router(cluster.router)
    return app


def _map_errors(app: FastAPI) -> None:
    """Domain and validation errors → JSON `{"detail": "<sentence>"}` with their status, once."""
    app.add_exception_handler(405, method_not_allowed)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(
            {"detail": describe_errors(exc.errors(), fallback="invalid request")},
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )

    @app.exception_handler(UnknownTask)
    async def _unknown(_: Request, exc: UnknownTask) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_404_NOT_FOUND)

    @app.exception_handler(TaskBusy)
    async def _busy(_: Request, exc: TaskBusy) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_409_CONFLICT)

    @app.exception_handler(CoordinationUnavailable)
    async def _uncoordinated(_: Request, exc: CoordinationUnavailable) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_503_SERVICE_UNAVAILABLE)


def __getattr__(name: str) -> FastAPI:
    """`server.app` is built on first access (uvicorn server:app), so importing this module for
    create_app() neither reads the environment nor creates files."""
    if name != "app":
        raise AttributeError(name)
    try:
        application = create_app()
    except (SettingsError, StartupError) as exc:
        # One clear line naming the variable or module, not a traceback.
        raise SystemExit(f"configuration error: {exc}") from None
    globals()["app"] = application
    return application
