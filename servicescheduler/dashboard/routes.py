"""Dashboard routes: `/`, the task page, and the HTML fragments the page polls every 2 s.

Paths are relative to wherever the host mounts the dashboard (dashboard/app.py); every link in
the templates starts with `root`, the mount's path. Read-only like the GET API (no token);
mutations are made by the page's script against the JSON API the dashboard carries at `/api`.
Kept out of the OpenAPI schema: these answer HTML, not the API's JSON.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from servicescheduler.api import functions as functions_api
from servicescheduler.api.deps import AppDep
from servicescheduler.dashboard import TEMPLATE_DIR, views
from servicescheduler.dashboard.format import FILTERS
from servicescheduler.dashboard.panels import PANELS
from servicescheduler.vocabulary import RunOutcome

router = APIRouter(include_in_schema=False)


def _mount_root(request: Request) -> dict[str, str]:
    """`root`: the path the dashboard is mounted at (links and API calls are built on it)."""
    return {"root": str(request.scope.get("root_path", "")).rstrip("/")}


# Autoescape is on: values are text, never HTML.
templates = Jinja2Templates(directory=TEMPLATE_DIR, context_processors=[_mount_root])
templates.env.filters.update(FILTERS)

# "" is the filter form's "all outcomes"; the others are RunOutcome, as the API's filter.
OutcomeFilter = Literal[""] | RunOutcome
PageNumber = Annotated[int, Query(ge=1, le=100_000)]


@router.get("/", response_class=HTMLResponse)
def home(request: Request, application: AppDep) -> HTMLResponse:
    """Every panel, rendered at once (the page also works without its script)."""
    panels = [(panel, panel.build(application)) for panel in PANELS.values()]
    functions = functions_api.list_functions(application)  # the create form's choices
    return templates.TemplateResponse(request, "index.html", {"panels": panels, "functions": functions})


@router.get("/panels/{name}", response_class=HTMLResponse)
def panel_fragment(name: str, request: Request, application: AppDep) -> HTMLResponse:
    """One panel's content, for the page's live refresh."""
    panel = PANELS.get(name)
    if panel is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown panel {name!r}")
    return templates.TemplateResponse(request, panel.template, {"panel": panel, "data": panel.build(application)})


@router.get("/tasks/{name}", response_class=HTMLResponse)
def task_detail(
    name: str, request: Request, application: AppDep, outcome: OutcomeFilter | None = None, page: PageNumber = 1
) -> HTMLResponse:
    """A task's run history (filter, paging), duration chart, errors and audit trail."""
    context = views.task_page(application, name, outcome or None, page)
    return templates.TemplateResponse(request, "task.html", context)


@router.get("/tasks/{name}/live", response_class=HTMLResponse)
def task_live(
    name: str, request: Request, application: AppDep, outcome: OutcomeFilter | None = None, page: PageNumber = 1
) -> HTMLResponse:
    """The live part of the task page, for the page's refresh."""
    context = views.task_page(application, name, outcome or None, page)
    return templates.TemplateResponse(request, "task_live.html", context)
