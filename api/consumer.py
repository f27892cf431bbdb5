"""Consumer routes: status, enable, disable, restart of the Kafka consumer.

Control routes are plain `def` functions: FastAPI runs them in its threadpool, so the blocking
stop (commit, leave the group, close; bounded by KAFKA_STOP_TIMEOUT_SECONDS) never blocks the
event loop.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from api.deps import AdminDep, RuntimeDep
from consumers.deadletters import recent_dead_letters

router = APIRouter(prefix="/consumer", tags=["consumer"])

DISABLED_DETAIL = "KAFKA_ENABLED is false: the Kafka consumer is not configured in this instance"


def _consumer(runtime):
    """The ConsumerSupervisor, or 409 when Kafka is switched off in the settings."""
    if runtime.consumer is None:
        raise HTTPException(status.HTTP_409_CONFLICT, DISABLED_DETAIL)
    return runtime.consumer


@router.get("")
def consumer_status(runtime: RuntimeDep) -> dict:
    """State, counters, partitions, lag and broker reachability (200 even when Kafka is off)."""
    if runtime.consumer is None:
        return {"enabled": False, "state": "disabled", "detail": DISABLED_DETAIL}
    return runtime.consumer.status()


@router.get("/dead-letters")
def dead_letters(runtime: RuntimeDep, limit: Annotated[int, Query(ge=1, le=500)] = 20) -> list[dict]:
    """Newest dead letters: reason, topic/partition/offset and a text preview of the raw value."""
    return recent_dead_letters(runtime.database, limit)


@router.get("/throughput")
def throughput(runtime: RuntimeDep) -> dict:
    """Messages and events per second between samples taken every few seconds (last minutes)."""
    if runtime.throughput is None:
        return {"sample_seconds": None, "points": []}
    return runtime.throughput.rates()


@router.post("/enable")
def enable_consumer(runtime: RuntimeDep, actor: AdminDep) -> dict:
    """Starts consuming (persisted); idempotent."""
    return _consumer(runtime).set_enabled(True, actor=actor)


@router.post("/disable")
def disable_consumer(runtime: RuntimeDep, actor: AdminDep) -> dict:
    """Stops the consumer thread: finishes the batch, commits, leaves the group (persisted)."""
    return _consumer(runtime).set_enabled(False, actor=actor)


@router.post("/restart")
def restart_consumer(runtime: RuntimeDep, actor: AdminDep) -> dict:
    """Stops the consumer thread and starts a fresh one (resets the backoff)."""
    return _consumer(runtime).restart(actor=actor)
