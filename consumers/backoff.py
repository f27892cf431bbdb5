"""Bounded exponential backoff: the ceiling `min(cap, base * factor ** attempt)` for ANY attempt.

`factor ** attempt` as a float overflows (OverflowError) after ~1,024 attempts with factor 2; a
consumer that keeps failing for hours reaches that. The exponent is clamped first instead.
"""

from __future__ import annotations

import math


def exponential_ceiling(attempt: int, *, base: float, factor: float, cap: float) -> float:
    """`min(cap, base * factor ** attempt)`, computed without overflow (attempt ≥ 0, factor ≥ 1)."""
    attempt = max(0, attempt)
    if base >= cap:
        return cap
    if factor <= 1:
        return base
    # The smallest exponent at which the cap is reached; beyond it the answer is the cap.
    reaching = math.log(cap / base) / math.log(factor)
    if attempt >= reaching:
        return cap
    return min(cap, base * factor**attempt)
