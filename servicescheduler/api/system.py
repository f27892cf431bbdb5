"""Operational routes: liveness, readiness, metrics, the latest report and the audit log."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response, status
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from servicescheduler.api.deps import AppDep
from servicescheduler.api.responses import error_responses
from servicescheduler.api.views import AuditView
from servicescheduler.builtin.report import latest_report
from servicescheduler.storage.audit import recent_audit
from servicescheduler.support.redact import public_error

router = APIRouter(tags=["operations"], responses=error_responses(422, 500, 503))


class Health(BaseModel):
    """Liveness answer."""

    status: str = Field(description="`ok` or `unhealthy`")
    detail: str | None = Field(default=None, description="Why the loop is not healthy")


class Readiness(BaseModel):
    """Readiness answer."""

    status: str = Field(description="`ready` or `not_ready`")
    checks: dict[str, str] = Field(description="database, scheduler, consumer: `ok` or the reason")
    stale_tasks: list[str]
    detail: str | None = Field(default=None, description="Every reason not ready, joined")


@router.get("/health", responses={200: {"model": Health}, 503: {"model": Health}})
def health(application: AppDep) -> JSONResponse:
    """Liveness: 200 while the scheduler loop runs and wakes on time, else 503."""
    alive, reason = application.scheduler.health()
    if alive:
        return JSONResponse({"status": "ok"})
    return JSONResponse({"status": "unhealthy", "detail": public_error(reason)}, status.HTTP_503_SERVICE_UNAVAILABLE)


@router.get("/ready", responses={200: {"model": Readiness}, 503: {"model": Readiness}})
def ready(application: AppDep) -> JSONResponse:
    """Readiness: database answers, scheduler runs, consumer (when enabled) consumes."""
    checks, reasons = application.readiness()
    checks = {name: public_error(check) if isinstance(check, str) else check for name, check in checks.items()}
    body: dict[str, Any] = {
        "status": "ready" if not reasons else "not_ready",
        "checks": checks,
        "stale_tasks": application.scheduler.stale_tasks(),
    }
    if reasons:
        body["detail"] = public_error("; ".join(reasons))
        return JSONResponse(body, status.HTTP_503_SERVICE_UNAVAILABLE)
    return JSONResponse(body)


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def metrics(application: AppDep) -> Response:
    """Prometheus text exposition."""
    application.metrics.refresh()
    return Response(generate_latest(application.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/reports/latest", responses=error_responses(404))
def reports_latest(application: AppDep) -> dict[str, Any]:
    """The newest report written by the `report` task; 404 before the first one."""
    report = latest_report(application.database)
    if report is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no report yet: the report task has not run")
    return report


@router.get("/audit", response_model=list[AuditView])
def audit(
    application: AppDep, limit: Annotated[int, Query(ge=1, le=500)] = 50, target: str | None = None
) -> list[dict[str, Any]]:
    """Changes made through the API, newest first."""
    return recent_audit(application.database, limit, target)
