"""An app of your own that embeds ServiceScheduler: its own routes, its own auth, two tasks, the
scheduler's API under /ops and its dashboard under /ops/ui.

    pip install servicescheduler uvicorn
    uvicorn app:app            # in this folder; then open http://127.0.0.1:8000/ops/ui/

EXAMPLE_DATABASE_URL chooses the database (default: SQLite in ./example.db).
"""

from __future__ import annotations

import logging
import os
from typing import Annotated

from fastapi import Depends, FastAPI, Header, HTTPException

from servicescheduler import ServiceScheduler, TaskContext, every

log = logging.getLogger("shop")

# Your real authentication goes here (a session, OAuth2, your gateway's header...).
API_KEYS = {"key-alice": "alice", "key-bob": "bob"}


def current_user(x_api_key: Annotated[str | None, Header()] = None) -> str:
    """The host's auth dependency: the user behind the API key (what the audit log records)."""
    user = API_KEYS.get(x_api_key or "")
    if user is None:
        raise HTTPException(401, "unknown or missing X-API-Key")
    return user


scheduler = ServiceScheduler(
    database_url=os.environ.get("EXAMPLE_DATABASE_URL", "sqlite:///./example.db"),
    kafka_enabled=False,  # tasks only; set kafka_bootstrap_servers=... to consume events too
    auth=current_user,  # mutations (enable, disable, run, PATCH) need a user, recorded as the actor
)
beats: list[str] = []


@scheduler.task("heartbeat", trigger=every(1).seconds, description="Notes that the shop is alive")
def heartbeat(ctx: TaskContext) -> None:
    beats.append(ctx.run_id)


@scheduler.task("nightly-summary", trigger=every().day.at("02:00"), timeout=600, description="Sums up the day")
async def nightly_summary(ctx: TaskContext) -> None:
    log.info("nightly summary: %d heartbeats (run %s)", len(beats), ctx.run_id)


app = FastAPI(title="Example shop", lifespan=scheduler.lifespan)


@app.get("/hello")
def hello(user: Annotated[str, Depends(current_user)]) -> dict[str, object]:
    """One of the shop's own routes."""
    return {"hello": user, "heartbeats": len(beats)}


app.include_router(scheduler.router, prefix="/ops", dependencies=[Depends(current_user)])
app.mount("/ops/ui", scheduler.dashboard)
