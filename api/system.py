"""Operational routes: liveness, readiness, metrics, the latest report and the audit log."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response, status
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import AppDep
from services.report import latest_report
from storage.audit import recent_audit

router = APIRouter(tags=["operations"])


@router.get("/health")
def health(application: AppDep) -> JSONResponse:
    """Liveness: 200 while the scheduler loop runs and wakes on time, else 503."""
    alive, reason = application.scheduler.health()
    if alive:
        return JSONResponse({"status": "ok"})
    return JSONResponse({"status": "unhealthy", "detail": reason}, status.HTTP_503_SERVICE_UNAVAILABLE)


@router.get("/ready")
def ready(application: AppDep) -> JSONResponse:
    """Readiness: database answers, scheduler runs, consumer (when enabled) consumes."""
    checks, reasons = application.readiness()
    body: dict[str, Any] = {"status": "ready" if not reasons else "not_ready", "checks": checks,
                            "stale_tasks": application.scheduler.stale_tasks()}
    if reasons:
        body["detail"] = "; ".join(reasons)
        return JSONResponse(body, status.HTTP_503_SERVICE_UNAVAILABLE)
    return JSONResponse(body)


@router.get("/metrics")
def metrics(application: AppDep) -> Response:
    """Prometheus text exposition."""
    application.metrics.refresh()
    return Response(generate_latest(application.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/reports/latest")
def reports_latest(application: AppDep) -> dict[str, Any]:
    """The newest report written by the `report` task; 404 before the first one."""
    report = latest_report(application.database)
    if report is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no report yet: the report task has not run")
    return report


@router.get("/audit")
def audit(application: AppDep, limit: Annotated[int, Query(ge=1, le=500)] = 50,
          target: str | None = None) -> list[dict[str, Any]]:
    """Changes made through the API, newest first."""
    return recent_audit(application.database, limit, target)
