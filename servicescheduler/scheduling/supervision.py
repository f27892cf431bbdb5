"""Components the scheduler loop looks after (the Kafka consumer, the throughput sampler):
started with it, checked when they ask to be, stopped with it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from servicescheduler.logs import get_logger

log = get_logger(__name__)

MIN_CHECK_INTERVAL_SECONDS = 0.01  # a supervised component is never checked more often
FAILED_CHECK_RETRY_SECONDS = 1.0


class Supervised(Protocol):
    """A component the loop looks after: started, checked, stopped."""

    name: str

    def start(self) -> None: ...

    def check(self, now: float) -> float | None:
        """Restarts what died; returns when to be checked next (epoch seconds)."""

    def stop(self, timeout: float) -> None: ...


class Components:
    """The supervised components, by name."""

    def __init__(self) -> None:
        self._items: dict[str, Supervised] = {}

    def add(self, component: Supervised) -> None:
        """Adds (or replaces) a component."""
        self._items[component.name] = component

    def names(self) -> list[str]:
        """Names of the components, in the order they were added."""
        return list(self._items)

    def check(self, name: str, now: float) -> float | None:
        """Checks `name`; returns when to check it next (None: it asked not to be), never sooner
        than MIN_CHECK_INTERVAL_SECONDS. A failing check is logged and retried, never raised:
        a supervisor bug must not kill the loop."""
        component = self._items.get(name)
        if component is None:
            return None
        try:
            next_check = component.check(now)
        except Exception as exc:
            log.error("supervisor_check_failed", component=name, error=str(exc), exc_info=True)
            next_check = now + FAILED_CHECK_RETRY_SECONDS
        return None if next_check is None else max(next_check, now + MIN_CHECK_INTERVAL_SECONDS)

    def stop_all(self, timeout: Callable[[], float]) -> None:
        """Stops every component, each within `timeout()` seconds (asked again for each)."""
        for component in self._items.values():
            component.stop(timeout())
