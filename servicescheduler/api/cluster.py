"""GET /cluster: the replicas sharing this service's database, alive or dead, what each runs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, status

from servicescheduler.api.deps import AppDep

router = APIRouter(tags=["cluster"])


@router.get("/cluster")
def cluster(application: AppDep) -> dict[str, Any]:
    """`{"self": id, "replicas": [{id, host, pid, started_at, last_seen_at, alive, running, partitions}]}`."""
    coordinator = application.coordinator
    if not coordinator.clustered:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, "CLUSTER_ENABLED is false: this process does not coordinate with other replicas"
        )
    return coordinator.describe()
