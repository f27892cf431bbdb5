"""Jinja filters: how numbers and API timestamps read on the page."""

from __future__ import annotations

from datetime import datetime


def clock(iso: str | None) -> str:
    """An API timestamp as `2026-11-26 11:52:03` (UTC); a dash for None."""
    if not iso:
        return "–"
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S")


def duration(ms: float | None) -> str:
    """`12.4 ms`, `3.20 s` or `4.1 min`; a dash for None."""
    if ms is None:
        return "–"
    if ms < 1000:
        return f"{ms:.1f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.2f} s"
    return f"{ms / 60_000:.1f} min"


def countdown(seconds: float | None) -> str:
    """`in 12 s`, `in 4 min 5 s`, `due now`; a dash for None (the script keeps it live)."""
    if seconds is None:
        return "–"
    if seconds < 1:
        return "due now"
    whole = int(seconds)
    if whole < 60:
        return f"in {whole} s"
    if whole < 3600:
        return f"in {whole // 60} min {whole % 60} s"
    return f"in {whole // 3600} h {whole % 3600 // 60} min"


def percent(share: float | None) -> str:
    """`97 %`; a dash for None."""
    return "–" if share is None else f"{share * 100:.0f} %"


FILTERS = {"clock": clock, "duration": duration, "countdown": countdown, "percent": percent}
