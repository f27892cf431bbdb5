"""Report section of benchmark 10 (dashboard render time)."""

from __future__ import annotations

from bench.dashboard.measure import GOAL_MS, RUNS_PER_TASK
from bench.report import goal
from bench.stats import ratio


def section(data: dict) -> dict:
    """Benchmark 10's report section."""
    loaded, empty = data["loaded"]["latency_ms"], data["empty"]["latency_ms"]
    rows, goals = [], []
    for label, summary in loaded.items():
        base = empty.get(label, {})
        rows.append([label, summary["p50"], summary["p99"], summary["max"], base.get("p50"), base.get("p99")])
    for label in ("GET / (dashboard)", "GET /ui/tasks/report (task page 1)"):
        p99 = loaded[label]["p99"]
        goals.append(
            goal(
                f"{label} p99, {RUNS_PER_TASK:,} runs per task",
                f"≤ {GOAL_MS:g} ms",
                f"{p99} ms",
                p99 <= GOAL_MS,
                f"no history {empty[label]['p99']} ms",
                ratio(p99, empty[label]["p99"]),
            )
        )
    return {
        "id": 10,
        "title": "Dashboard render time",
        "goals": goals,
        "method": (
            f"The real app on SQLite with {RUNS_PER_TASK:,} runs of history for each of 3 tasks "
            f"({data['loaded']['seed_s']} s to seed), served by uvicorn on 127.0.0.1 in the bench process; "
            f"{data['samples']} sequential GETs per page after 5 warm-ups, timed at the client (full HTTP "
            "round trip). Baseline in the same run: the same pages on an empty history, and the JSON "
            "`GET /tasks` the tasks panel is built from."
        ),
        "tables": [
            {
                "columns": ["request", "p50 ms", "p99 ms", "max ms", "no history p50 ms", "no history p99 ms"],
                "rows": rows,
            }
        ],
    }
