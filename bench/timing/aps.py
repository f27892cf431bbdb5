"""APScheduler 3.x BackgroundScheduler, configured as a user would (defaults, 10 threads)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger


def new_scheduler() -> BackgroundScheduler:
    """A BackgroundScheduler in UTC with the default thread pool executor."""
    return BackgroundScheduler(timezone=UTC)


def add_interval(
    scheduler: BackgroundScheduler, seconds: float, func: Callable[[], Any], start_at: float, name: str
) -> None:
    """Runs `func` every `seconds` on the grid start_at + k*seconds (epoch seconds)."""
    start = datetime.fromtimestamp(start_at, UTC)
    scheduler.add_job(func, IntervalTrigger(seconds=seconds, start_date=start, timezone=UTC), id=name, name=name)
