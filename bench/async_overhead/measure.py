"""Benchmark 5: per-run overhead of an `async def` task run in a fresh event loop.

Compares `execution.run_in_fresh_loop` (what the product does for every async run) with a plain
function call, a persistent event loop and `asyncio.run`, on a coroutine that does nothing.
Variants are interleaved in rounds so machine noise hits them alike.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from bench.common import ensure_path
from bench.stats import summarize

ITERATIONS = {"full": 2000, "quick": 300}
ROUNDS = 10


async def _empty() -> None:
    return None


def _plain() -> None:
    return None


def _variants() -> tuple[dict[str, Callable[[], object]], asyncio.AbstractEventLoop]:
    ensure_path()
    from servicescheduler.scheduling.executor import run_in_fresh_loop

    loop = asyncio.new_event_loop()
    return {
        "plain call": _plain,
        "persistent loop": lambda: loop.run_until_complete(_empty()),
        "fresh loop (product)": lambda: run_in_fresh_loop(_empty, (), None),
        "asyncio.run": lambda: asyncio.run(_empty()),
    }, loop


def measure(quick: bool, iterations: int | None = None) -> dict:
    """Per-call time (µs) of each variant; samples are per-round means."""
    total = iterations or ITERATIONS["quick" if quick else "full"]
    per_round = max(1, total // ROUNDS)
    variants, loop = _variants()
    samples: dict[str, list[float]] = {name: [] for name in variants}
    try:
        for _ in range(ROUNDS):
            for name, call in variants.items():
                started = time.perf_counter()
                for _ in range(per_round):
                    call()
                samples[name].append((time.perf_counter() - started) / per_round)
    finally:
        loop.close()
    return {
        "iterations": per_round * ROUNDS,
        "variants": {name: summarize(values, 1e6, 2) for name, values in samples.items()},
    }
