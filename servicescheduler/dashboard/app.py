"""The dashboard as an ASGI application a host mounts wherever it likes:

    app.mount("/ops/ui", scheduler.dashboard)

It carries everything its page needs under that one path: the pages and fragments (routes.py),
the static files, and the JSON API at `<mount>/api` (bound to the same ServiceScheduler, with the
same `auth`), which the page's controls call. So the page never has to know where the host
included `scheduler.router`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from servicescheduler.api.binding import bind_routes
from servicescheduler.api.routers import ROUTERS
from servicescheduler.dashboard import STATIC_DIR
from servicescheduler.dashboard import routes as pages
from servicescheduler.dashboard.security import SecurityHeaders

if TYPE_CHECKING:
    from servicescheduler.embedding import ServiceScheduler


def build_dashboard(service: ServiceScheduler) -> FastAPI:
    """The dashboard of `service`: pages at `/`, static files at `/static`, the API at `/api`."""
    app = FastAPI(title="ServiceScheduler dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(bind_routes(service, [pages.router], include_in_schema=False))
    app.include_router(bind_routes(service, ROUTERS, include_in_schema=False), prefix="/api")
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    # On everything the mount answers (pages, fragments, static files, its API): the host's own
    # pages (e.g. /docs, which loads a CDN script) keep their own policy.
    app.add_middleware(SecurityHeaders)
    return app
