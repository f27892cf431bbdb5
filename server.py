"""The reference service: `uvicorn server:app` serves ServiceScheduler as a service of its own.

Built from the library's public API only, the way any host app embeds it: settings from the
environment (and `.env`), JSON logs on stdout, the built-in tasks and the modules of
TASK_MODULES, the API at the root and the dashboard at /ui (`/` redirects there).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match

from servicescheduler import (
    ServiceScheduler,
    Settings,
    SettingsError,
    StartupError,
    TaskRegistry,
    configure_logging,
    handlers,
    load_settings,
)

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def create_app(settings: Settings | None = None, registry: TaskRegistry | None = None) -> FastAPI:
    """The service's app; tests pass their own settings and registry.

    Without a registry, the built-in tasks (BUILTIN_TASKS) and the modules of TASK_MODULES are
    imported and their tasks served; with one, exactly its tasks.
    """
    settings = settings or load_settings()
    configure_logging(settings.log_level, settings.log_format)
    if registry is not None:
        settings = settings.model_copy(update={"builtin_tasks": "", "task_modules": ""})
    # The module-level handler registry: TASK_MODULES modules register their event handlers there.
    scheduler = ServiceScheduler(settings, handlers=handlers)
    if registry is not None:
        scheduler.include(registry)
    scheduler.check()  # a bad BUILTIN_TASKS, TASK_MODULES or token file stops start-up here, in one line

    app = FastAPI(
        title="ServiceScheduler",
        version="1.0.0",
        lifespan=scheduler.lifespan,
        description="Periodic tasks and a Kafka consumer inside one FastAPI service.",
    )
    app.state.servicescheduler = scheduler
    app.add_exception_handler(405, method_not_allowed)
    app.include_router(scheduler.router)

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("ui/")

    app.mount("/ui", scheduler.dashboard)
    return app


async def method_not_allowed(request: Request, exc: Exception) -> JSONResponse:
    """405 naming every method the path allows. Starlette answers 405 from the first route whose
    path matches, so its `Allow` lists only that route's methods (GET /tasks/{name} would hide
    PATCH /tasks/{name}); this asks the router which methods would fully match."""
    allowed = {method for method in METHODS if _routed(request, method)}
    if not allowed and isinstance(exc, HTTPException) and exc.headers:
        allowed = {m.strip() for m in exc.headers.get("Allow", "").split(",") if m.strip()}
    methods = ", ".join(sorted(allowed))
    detail = f"method {request.method} is not allowed on {request.scope['path']}; allowed: {methods}"
    return JSONResponse({"detail": detail}, 405, headers={"Allow": methods})


def _routed(request: Request, method: str) -> bool:
    probe = {**request.scope, "method": method}
    return any(route.matches(probe)[0] == Match.FULL for route in request.app.router.routes)


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
