"""The home page is a list of panels, each refreshed on its own; a new panel is one entry here.

A panel names its template (in templates/panels/) and the function that builds its context from
the application.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from servicescheduler.dashboard import views
from servicescheduler.service import Application


@dataclass(frozen=True)
class Panel:
    """One refreshable section of the home page."""

    name: str
    title: str
    template: str
    build: Callable[[Application], dict[str, Any]]


PANELS: dict[str, Panel] = {
    panel.name: panel
    for panel in (
        Panel("tasks", "Tasks", "panels/tasks.html", lambda application: {"tasks": views.task_rows(application)}),
        Panel("consumer", "Kafka consumer", "panels/consumer.html", views.consumer_panel),
        Panel("replicas", "Replicas", "panels/replicas.html", views.replicas_panel),
    )
}
