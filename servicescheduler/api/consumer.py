"""Consumer routes: status, enable, disable, restart of the Kafka consumer.

Control routes are plain `def` functions: FastAPI runs them in its threadpool, so the blocking
stop (commit, leave the group, close; bounded by KAFKA_STOP_TIMEOUT_SECONDS) never blocks the
event loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status

from servicescheduler.api.deps import AdminDep, AppDep
from servicescheduler.api.responses import error_responses
from servicescheduler.service import Application
from servicescheduler.storage.dead_letters import recent_dead_letters
from servicescheduler.support.redact import scrub_errors

if TYPE_CHECKING:  # importing it at run time would import kafka-python when Kafka is off
    from servicescheduler.consumers.running.supervisor import ConsumerSupervisor

router = APIRouter(prefix="/consumer", tags=["consumer"], responses=error_responses(500, 503))

DISABLED_DETAIL = (
    "the Kafka consumer is off in this instance (KAFKA_ENABLED is false, or KAFKA_BOOTSTRAP_SERVERS is not set)"
)


def _consumer(application: Application) -> ConsumerSupervisor:
    """The ConsumerSupervisor, or 409 when Kafka is switched off in the settings."""
    if application.consumer is None:
        raise HTTPException(status.HTTP_409_CONFLICT, DISABLED_DETAIL)
    return application.consumer


@router.get("")
def consumer_status(application: AppDep) -> dict[str, Any]:
    """State, counters, partitions, lag and broker reachability (200 even when Kafka is off)."""
    if application.consumer is None:
        return {"enabled": False, "state": "disabled", "detail": DISABLED_DETAIL}
    return scrub_errors(application.consumer.status())


@router.get("/dead-letters", responses=error_responses(422))
def dead_letters(application: AppDep, limit: Annotated[int, Query(ge=1, le=500)] = 20) -> list[dict[str, Any]]:
    """Newest dead letters: reason, topic/partition/offset and a text preview of the raw value."""
    return recent_dead_letters(application.database, limit)


@router.get("/throughput")
def throughput(application: AppDep) -> dict[str, Any]:
    """Messages and events per second between samples taken every few seconds (last minutes)."""
    if application.throughput is None:
        return {"sample_seconds": None, "points": []}
    return application.throughput.rates()


@router.post("/enable", responses=error_responses(401, 409))
def enable_consumer(application: AppDep, actor: AdminDep) -> dict[str, Any]:
    """Starts consuming (persisted); idempotent."""
    return _consumer(application).set_enabled(True, actor=actor)


@router.post("/disable", responses=error_responses(401, 409))
def disable_consumer(application: AppDep, actor: AdminDep) -> dict[str, Any]:
    """Stops the consumer thread: finishes the batch, commits, leaves the group (persisted)."""
    return _consumer(application).set_enabled(False, actor=actor)


@router.post("/restart", responses=error_responses(401, 409))
def restart_consumer(application: AppDep, actor: AdminDep) -> dict[str, Any]:
    """Stops the consumer thread and starts a fresh one (resets the backoff)."""
    return _consumer(application).restart(actor=actor)
