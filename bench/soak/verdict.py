"""PASS/MISS of a soak run, computed only from its samples and its final accounting (pure logic).

- RSS growth: (RSS of the last sample − RSS of the first sample at or after the warm-up) / the
  latter, < 10 %. The first minute is excluded: imports, pools and caches fill it.
- Threads and descriptors flat: their floor (minimum) over the last window of samples exceeds
  their floor over the first window after the warm-up by at most a small tolerance. Floors, not
  single samples: an async run in progress holds its event loop's 3 descriptors (epoll + self-pipe)
  and a run its thread at the sampling instant, which says nothing about a leak; a leaked thread or
  descriptor raises the floor. Window: a minute, or a third of the post-warm-up time if shorter.
  One thread or descriptor leaked per minute fails a 10-minute run.
- Events lost: produced (acknowledged by the broker) − stored − dead-lettered = 0, and every
  produced id is in the events table.
- Runs unrecorded: runs the tasks counted themselves with no row in task_runs = 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

RSS_GROWTH_LIMIT = 0.10
THREADS_TOLERANCE = 2
FDS_TOLERANCE = 2
WARMUP_SECONDS = 60.0
WINDOW_SECONDS = 60.0

Sample = dict[str, Any]


def baseline_index(samples: Sequence[Sample], warmup_s: float) -> int | None:
    """Index of the first sample taken at or after `warmup_s` with the process readable."""
    for index, sample in enumerate(samples):
        if sample["t_s"] >= warmup_s and sample.get("rss_mib") is not None:
            return index
    return None


def _last_readable(samples: Sequence[Sample]) -> Sample | None:
    return next((s for s in reversed(samples) if s.get("rss_mib") is not None), None)


def _row(name: str, criterion: str, start: object, end: object, measured: str, ok: bool | None) -> dict[str, Any]:
    status = "NOT MEASURED" if ok is None else ("PASS" if ok else "MISS")
    return {"name": name, "criterion": criterion, "start": start, "end": end, "measured": measured, "status": status}


def resource_rows(samples: Sequence[Sample], warmup_s: float = WARMUP_SECONDS) -> list[dict[str, Any]]:
    """The RSS, threads and descriptors criteria."""
    index = baseline_index(samples, warmup_s)
    last = _last_readable(samples)
    if index is None or last is None or last is samples[index]:
        why = f"no two samples after the {warmup_s:.0f} s warm-up"
        return [
            _row(n, c, None, None, why, None)
            for n, c in (
                ("RSS growth", f"< {RSS_GROWTH_LIMIT:.0%} after the warm-up"),
                ("threads", "flat"),
                ("open fds", "flat"),
            )
        ]
    base = samples[index]
    growth = (last["rss_mib"] - base["rss_mib"]) / base["rss_mib"]
    rows = [
        _row(
            "RSS growth",
            f"< {RSS_GROWTH_LIMIT:.0%} after the warm-up",
            base["rss_mib"],
            last["rss_mib"],
            f"{growth:+.1%}",
            growth < RSS_GROWTH_LIMIT,
        )
    ]
    for key, label, tolerance in (("threads", "threads", THREADS_TOLERANCE), ("fds", "open fds", FDS_TOLERANCE)):
        rows.append(_flat_row(samples[index:], key, label, tolerance))
    return rows


def _flat_row(samples: Sequence[Sample], key: str, label: str, tolerance: int) -> dict[str, Any]:
    """Floor of the first window vs floor of the last window of `samples` (all post-warm-up)."""
    criterion = f"flat (floor of the last window ≤ floor of the first + {tolerance})"
    readable = [s for s in samples if s.get(key) is not None]
    if len(readable) < 2:
        return _row(label, criterion, None, None, "not read", None)
    span = readable[-1]["t_s"] - readable[0]["t_s"]
    window = min(WINDOW_SECONDS, span / 3)
    start = min(s[key] for s in readable if s["t_s"] <= readable[0]["t_s"] + window)
    end = min(s[key] for s in readable if s["t_s"] >= readable[-1]["t_s"] - window)
    measured = f"{end - start:+d} (samples ranged {_range(readable, key)})"
    return _row(label, criterion, start, end, measured, end - start <= tolerance)


def _range(samples: Sequence[Sample], key: str) -> str:
    values = [s[key] for s in samples if s.get(key) is not None]
    return f"{min(values)}–{max(values)}" if values else "–"


def accounting_rows(accounting: dict[str, Any]) -> list[dict[str, Any]]:
    """The events-lost and runs-unrecorded criteria from the final counts."""
    produced, stored, dead = accounting["produced"], accounting["stored"], accounting["dead_lettered"]
    lost = produced - stored - dead
    missing = accounting.get("missing_ids", 0)
    events_ok = lost == 0 and missing == 0 and produced > 0
    events = _row(
        "events lost",
        "0 (produced − stored − dead-lettered)",
        produced,
        stored + dead,
        f"{lost} ({produced} − {stored} − {dead}); ids missing: {missing}",
        events_ok,
    )
    counted, unrecorded = accounting["runs_counted"], accounting["runs_unrecorded"]
    runs = _row(
        "runs unrecorded",
        "0 (runs the tasks counted without a task_runs row)",
        counted,
        counted - unrecorded,
        f"{unrecorded} of {counted}",
        unrecorded == 0 and counted > 0,
    )
    return [events, runs]


RSS_PARTS = ("rss_mib", "rss_anon_mib", "rss_file_mib", "rss_shmem_mib")
# From the server's heap probe (bench.soak.heap): who owns the anonymous memory.
HEAP_OWNERS = ("sqlite_mib", "malloc_in_use_mib", "malloc_free_mib")


def memory_growth(samples: Sequence[Sample], warmup_s: float = WARMUP_SECONDS) -> dict[str, Any] | None:
    """Where RSS grew after the warm-up (MiB: total, anonymous, file-backed, shared) and how fast at
    the start and at the end of that period (MiB/min), to tell a plateau from a steady leak."""
    index = baseline_index(samples, warmup_s)
    readable = [s for s in samples[index or 0 :] if s.get("rss_mib") is not None]
    if index is None or len(readable) < 3:
        return None
    first, last = readable[0], readable[-1]
    growth = {key: _delta(first, last, key) for key in (*RSS_PARTS, *HEAP_OWNERS)}
    third = max(1, len(readable) // 3)
    return {
        **growth,
        "first_third_mib_per_min": _rate(readable[: third + 1]),
        "last_third_mib_per_min": _rate(readable[-third - 1 :]),
    }


def _delta(first: Sample, last: Sample, key: str) -> float | None:
    if first.get(key) is None or last.get(key) is None:
        return None
    return round(float(last[key]) - float(first[key]), 1)


def _rate(samples: Sequence[Sample]) -> float | None:
    minutes = (samples[-1]["t_s"] - samples[0]["t_s"]) / 60
    return round((samples[-1]["rss_mib"] - samples[0]["rss_mib"]) / minutes, 1) if minutes > 0 else None


def verdict(
    samples: Sequence[Sample], accounting: dict[str, Any] | None, warmup_s: float = WARMUP_SECONDS
) -> dict[str, Any]:
    """All criteria, and PASS only when every one passed (a run cut short is a MISS)."""
    rows = resource_rows(samples, warmup_s)
    if accounting is None:
        rows.append(_row("events lost / runs unrecorded", "0", None, None, "run did not finish", False))
    else:
        rows.extend(accounting_rows(accounting))
    overall = "PASS" if rows and all(r["status"] == "PASS" for r in rows) else "MISS"
    return {"overall": overall, "criteria": rows}
