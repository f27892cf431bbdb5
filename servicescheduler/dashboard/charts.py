"""SVG geometry for run-duration charts (sparklines and the task page chart); pure functions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from servicescheduler.vocabulary import RunOutcome

MIN_BAR_HEIGHT = 2.0  # skipped/missed runs last 0 ms: still visible as a coloured stub


@dataclass(frozen=True)
class Bar:
    """One run drawn as a bar: position, size, outcome (the colour) and a tooltip."""

    x: float
    y: float
    width: float
    height: float
    outcome: str
    title: str


@dataclass(frozen=True)
class Chart:
    """Bars of a chart plus what its axis says."""

    width: int
    height: int
    bars: list[Bar]
    peak: float  # the largest value drawn (ms or events/s): the full bar height
    first_at: str | None
    last_at: str | None


def duration_chart(runs_newest_first: list[dict[str, Any]], width: int, height: int, slots: int) -> Chart:
    """Bars of run duration, oldest on the left, `slots` bars wide; height proportional to the longest run."""
    runs = list(reversed(runs_newest_first))
    max_ms = max((r["duration_ms"] or 0.0 for r in runs), default=0.0)
    slot = width / max(1, slots, len(runs))
    bars = []
    for index, run in enumerate(runs):
        duration = run["duration_ms"] or 0.0
        bar_height = MIN_BAR_HEIGHT if max_ms <= 0 else max(MIN_BAR_HEIGHT, duration / max_ms * height)
        outcome = run["outcome"] or RunOutcome.RUNNING
        title = f"{run['started_at']}: {outcome}, {duration:g} ms"
        bars.append(
            Bar(
                round(index * slot, 2),
                round(height - bar_height, 2),
                round(max(1.0, slot * 0.8), 2),
                round(bar_height, 2),
                outcome,
                title,
            )
        )
    return Chart(
        width, height, bars, max_ms, runs[0]["started_at"] if runs else None, runs[-1]["started_at"] if runs else None
    )


def success_rate(runs: list[dict[str, Any]]) -> float | None:
    """Share of successes among runs that ran (skipped and missed runs did not); None if none ran."""
    ran = [r for r in runs if r["outcome"] is not None and RunOutcome(r["outcome"]).ran]
    if not ran:
        return None
    return sum(1 for r in ran if r["outcome"] == RunOutcome.SUCCESS) / len(ran)


def rate_chart(points: list[dict[str, Any]], width: int, height: int, slots: int) -> Chart:
    """Bars of events per second, newest at the right edge, `slots` bars wide."""
    peak = max((p["events_per_second"] for p in points), default=0.0)
    slot = width / max(1, slots, len(points))
    start = width - slot * len(points)
    bars = []
    for index, point in enumerate(points):
        rate = point["events_per_second"]
        bar_height = MIN_BAR_HEIGHT if peak <= 0 else max(MIN_BAR_HEIGHT, rate / peak * height)
        title = f"{point['at']}: {rate:g} events/s, {point['messages_per_second']:g} messages/s"
        bars.append(
            Bar(
                round(start + index * slot, 2),
                round(height - bar_height, 2),
                round(max(1.0, slot * 0.8), 2),
                round(bar_height, 2),
                "rate",
                title,
            )
        )
    first = points[0]["at"] if points else None
    return Chart(width, height, bars, peak, first, points[-1]["at"] if points else None)
