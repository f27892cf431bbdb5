"""Consumer routes: status, enable, disable, restart of the Kafka consumer.

Control routes are plain `def` functions: FastAPI runs them in its threadpool, so the blocking
stop (commit, leave the group, close; bounded by KAFKA_STOP_TIMEOUT_SECONDS) never blocks the
event loop.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from api.admin_route import AdminFirstRoute
from api.deps import AdminDep, RuntimeDep
from api.responses import error_responses
from redact import scrub_errors

router = APIRouter(prefix="/consumer", tags=["consumer"], route_class=AdminFirstRoute,
                   responses=error_responses(500, 503))

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
    return scrub_errors(runtime.consumer.status())


@router.post("/enable", responses=error_responses(401, 409))
def enable_consumer(runtime: RuntimeDep, actor: AdminDep) -> dict:
    """Starts consuming (persisted); idempotent."""
    return _consumer(runtime).set_enabled(True, actor=actor)


@router.post("/disable", responses=error_responses(401, 409))
def disable_consumer(runtime: RuntimeDep, actor: AdminDep) -> dict:
    """Stops the consumer thread: finishes the batch, commits, leaves the group (persisted)."""
    return _consumer(runtime).set_enabled(False, actor=actor)


@router.post("/restart", responses=error_responses(401, 409))
def restart_consumer(runtime: RuntimeDep, actor: AdminDep) -> dict:
    """Stops the consumer thread and starts a fresh one (resets the backoff)."""
    return _consumer(runtime).restart(actor=actor)
