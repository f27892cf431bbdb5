"""The home page is a list of panels, each refreshed on its own; a new panel is one entry here.

A panel names its template (in templates/panels/) and the function that builds its context from
the runtime. The Replicas panel (cluster view) is to be added here once that view exists.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dashboard import views
from runtime import AppRuntime


@dataclass(frozen=True)
class Panel:
    """One refreshable section of the home page."""

    name: str
    title: str
    template: str
    build: Callable[[AppRuntime], dict[str, Any]]


PANELS: dict[str, Panel] = {
    panel.name: panel
    for panel in (
        Panel("tasks", "Tasks", "panels/tasks.html", lambda runtime: {"tasks": views.task_rows(runtime)}),
        Panel("consumer", "Kafka consumer", "panels/consumer.html", views.consumer_panel),
    )
}
