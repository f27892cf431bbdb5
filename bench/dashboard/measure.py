"""Benchmark 10: dashboard render time with 10,000 runs of history per task.

`python -m bench.dashboard [--quick]` runs it alone (prints the section's markdown and writes
bench/results/dashboard-<date>.json); `python -m bench` runs it as benchmark 10. The real app is
served by uvicorn on 127.0.0.1 in this process and fetched with httpx, one request at a time, so
each figure is a full HTTP round trip (client time included: an upper bound of the render time).
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

from bench.common import bench_settings, ensure_path, open_database
from bench.stats import summarize

TASKS = {"notifications": 30, "cleanup": 300, "report": 900}  # the built-in tasks' names and periods
RUNS_PER_TASK = 10_000
GOAL_MS = 100.0
SAMPLES = {"full": 200, "quick": 40}


class _Server:
    """The real app on a loopback port, served by uvicorn in a thread."""

    def __init__(self, settings) -> None:
        import uvicorn

        from devtools.tansu import free_port
        from server import create_app
        from servicescheduler.scheduling.registry import TaskRegistry
        from servicescheduler.scheduling.triggers import every

        registry = TaskRegistry()
        for name, period in TASKS.items():
            registry.register(name, lambda: None, trigger=every(period).seconds)
        self.app = create_app(settings, registry)
        self.url = f"http://127.0.0.1:{free_port()}"
        port = int(self.url.rsplit(":", 1)[1])
        self.server = uvicorn.Server(
            uvicorn.Config(self.app, host="127.0.0.1", port=port, log_config=None, lifespan="on", access_log=False)
        )
        self.thread = threading.Thread(target=self.server.run, name="bench-dashboard", daemon=True)

    def __enter__(self) -> _Server:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("app did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def _timed(client, path: str, samples: int) -> dict:
    for _ in range(5):  # warm-up: templates compiled, connections pooled
        client.get(path).raise_for_status()
    durations = []
    for _ in range(samples):
        start = time.perf_counter()
        response = client.get(path)
        durations.append(time.perf_counter() - start)
        response.raise_for_status()
    return summarize(durations, 1000)


def _measure_app(tmp: Path, runs: int, samples: int, paths: dict[str, str]) -> dict:
    import httpx

    from devtools.seed_history import seed_history

    settings = bench_settings(tmp)
    database = open_database(settings)
    started = time.perf_counter()
    if runs:
        seed_history(database, TASKS, runs)
    seed_s = time.perf_counter() - started
    database.dispose()
    with _Server(settings) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        latency = {label: _timed(client, path, samples) for label, path in paths.items()}
    return {"runs_per_task": runs, "seed_s": round(seed_s, 2), "latency_ms": latency}


PATHS = {
    "GET / (dashboard)": "/ui/",
    "GET /ui/panels/tasks (2 s refresh)": "/ui/panels/tasks",
    "GET /ui/tasks/report (task page 1)": "/ui/tasks/report",
    "GET /ui/tasks/report?page=400 (oldest page)": "/ui/tasks/report?page=400",
    "GET /tasks (JSON API)": "/tasks",
}


def measure(quick: bool) -> dict:
    """The pages with 10,000 runs per task, and the same pages with no history (baseline)."""
    ensure_path()
    samples = SAMPLES["quick" if quick else "full"]
    with (
        tempfile.TemporaryDirectory(prefix="bench-dashboard-") as full,
        tempfile.TemporaryDirectory(prefix="bench-dashboard-empty-") as empty,
    ):
        loaded = _measure_app(Path(full), RUNS_PER_TASK, samples, PATHS)
        baseline = _measure_app(Path(empty), 0, samples, {k: v for k, v in PATHS.items() if "page=" not in k})
    return {"samples": samples, "loaded": loaded, "empty": baseline}
