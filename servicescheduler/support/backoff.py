"""Exponential backoff with full jitter, bounded for any attempt number.

`factor ** attempt` overflows a float after ~1,024 doublings; the ceiling is computed without
ever raising the factor past the point where it would exceed the cap.
"""

from __future__ import annotations

import math
import random


def backoff_ceiling(attempt: int, *, base: float, cap: float, factor: float = 2.0) -> float:
    """min(cap, base * factor ** attempt) without overflow (attempt counts from 0)."""
    if attempt <= 0 or factor <= 1.0:
        return min(cap, base)
    if base >= cap:
        return cap
    # Doublings needed to reach the cap: anything beyond is the cap itself.
    if attempt >= math.log(cap / base, factor):
        return cap
    return min(cap, base * factor**attempt)


def backoff_delay(
    attempt: int, *, base: float, cap: float, factor: float = 2.0, rng: random.Random | None = None
) -> float:
    """Full jitter: uniform(0, ceiling) seconds, so retrying clients spread out instead of colliding."""
    return (rng or random).uniform(0, backoff_ceiling(attempt, base=base, cap=cap, factor=factor))
