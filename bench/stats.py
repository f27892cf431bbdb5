"""Percentiles and summaries of samples (no numpy needed)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(samples: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) by linear interpolation; None for no samples."""
    if not samples:
        return None
    ordered = sorted(samples)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    fraction = rank - low
    return float(ordered[low] + (ordered[high] - ordered[low]) * fraction)


def summarize(samples: Sequence[float], scale: float = 1.0, digits: int = 3) -> dict:
    """n, mean, p50, p90, p99, min, max of `samples` multiplied by `scale` (e.g. 1000 for s -> ms)."""
    values = [v * scale for v in samples]
    if not values:
        return {"n": 0, "mean": None, "p50": None, "p90": None, "p99": None, "min": None, "max": None}

    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, digits)

    return {
        "n": len(values),
        "mean": rounded(sum(values) / len(values)),
        "p50": rounded(percentile(values, 50)),
        "p90": rounded(percentile(values, 90)),
        "p99": rounded(percentile(values, 99)),
        "min": rounded(min(values)),
        "max": rounded(max(values)),
    }


def ratio(value: float | None, reference: float | None, digits: int = 2) -> float | None:
    """value / reference, or None when either is missing or the reference is zero."""
    if value is None or reference in (None, 0):
        return None
    return round(value / reference, digits)
