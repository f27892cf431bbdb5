"""What each part of the dashboard shows, built by calling the JSON API's own route functions.

No query of its own: every value comes from the function behind a GET route (`api.tasks`,
`api.consumer`, `api.system`), so the page and the API cannot disagree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from servicescheduler.api import cluster as cluster_api
from servicescheduler.api import consumer as consumer_api
from servicescheduler.api import system as system_api
from servicescheduler.api import tasks as tasks_api
from servicescheduler.dashboard.charts import duration_chart, rate_chart, success_rate
from servicescheduler.service import Application
from servicescheduler.support.clock import iso
from servicescheduler.vocabulary import RunOutcome

SPARKLINE_RUNS = 50
HISTORY_PAGE = 25
CHART_RUNS = 200
CHART_MIN_SLOTS = 60  # fewer runs than this leave room on the right instead of fat bars
AUDIT_ENTRIES = 20
NEXT_RUNS = 5  # the task page's "next runs", from the trigger's next_fire
DEAD_LETTERS = 10
RATE_SLOTS = 60  # five minutes of 5 s samples


def seconds_until(iso: str | None, now: datetime | None = None) -> float | None:
    """Seconds from now to an API timestamp (negative when past); None stays None."""
    if iso is None:
        return None
    now = now or datetime.now(UTC)
    return (datetime.fromisoformat(iso) - now).total_seconds()


def task_rows(application: Application) -> list[dict[str, Any]]:
    """GET /tasks, each task with its last runs (GET /tasks/{name}/runs) as a sparkline and rate."""
    rows = []
    for task in tasks_api.list_tasks(application):
        runs = tasks_api.task_runs(task["name"], application, limit=SPARKLINE_RUNS, outcome=None, offset=0)
        rows.append(
            {
                **task,
                "recent_runs": len(runs),
                "success_rate": success_rate(runs),
                "sparkline": duration_chart(runs, 120, 24, SPARKLINE_RUNS),
                "next_in": seconds_until(task["next_run_at"]),
            }
        )
    return rows


def consumer_panel(application: Application) -> dict[str, Any]:
    """GET /consumer, /consumer/throughput and /consumer/dead-letters."""
    status = consumer_api.consumer_status(application)
    lag = status.get("lag") or {}
    throughput = consumer_api.throughput(application)
    points = throughput["points"]
    return {
        "status": status,
        "lag": sorted(lag.items()),
        "topics": sorted((status.get("topics") or {}).items()),  # stored, duplicates, dead letters, lag
        "throughput": throughput,
        "rate_chart": rate_chart(points, 240, 48, RATE_SLOTS),
        "latest_rate": points[-1]["events_per_second"] if points else None,
        "dead_letters": consumer_api.dead_letters(application, limit=DEAD_LETTERS),
    }


def replicas_panel(application: Application) -> dict[str, Any]:
    """GET /cluster (None when CLUSTER_ENABLED is false: this process works alone)."""
    if not application.coordinator.clustered:
        return {"cluster": None}
    return {"cluster": cluster_api.cluster(application)}


def task_page(application: Application, name: str, outcome: RunOutcome | None, page: int) -> dict[str, Any]:
    """GET /tasks/{name}, a page of /tasks/{name}/runs, the chart's runs and GET /audit?target=name.

    Raises UnknownTask (404) for an unknown task.
    """
    task = tasks_api.get_task(name, application)
    offset = (page - 1) * HISTORY_PAGE
    # One row more than a page tells whether an older page exists.
    runs = tasks_api.task_runs(name, application, limit=HISTORY_PAGE + 1, outcome=outcome, offset=offset)
    chart_runs = tasks_api.task_runs(name, application, limit=CHART_RUNS, outcome=None, offset=0)
    audit = system_api.audit(application, limit=AUDIT_ENTRIES, target=name)
    return {
        "task": {**task, "next_in": seconds_until(task["next_run_at"])},
        "next_runs": [iso(due) for due in application.scheduler.upcoming(name, NEXT_RUNS)],
        "runs": runs[:HISTORY_PAGE],
        "outcome": outcome,
        "page": page,
        "has_older": len(runs) > HISTORY_PAGE,
        "chart": duration_chart(chart_runs, 720, 160, CHART_MIN_SLOTS),
        "chart_rate": success_rate(chart_runs),
        "audit": audit,
        "outcomes": tuple(RunOutcome),  # the filter offers exactly what GET /tasks/{name}/runs takes
    }
