"""Benchmarks 4 (reaction to POST /run and /enable) and 6 (GET /tasks latency under task load).

The real app (`server.create_app`) is served by uvicorn on 127.0.0.1 in a subprocess
(`python -m bench.web.measure PORT TASKS`), so the client never shares the server's GIL. Two bench-only
routes are added to that app object: `/_bench/started/{name}` returns when a task body
started (CLOCK_MONOTONIC, comparable across processes) and `/_bench/load/{mode}` keeps a 2 s
CPU-bound task running in a worker thread or in the process pool.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

from bench.common import AUTH, ROOT, cpu_burn, cpu_burn_2s, ensure_path
from bench.stats import summarize

SAMPLES = {"full": {"reaction": 200, "web": 500}, "quick": {"reaction": 50, "web": 125}}
LOAD_TASKS = {"thread": "cpu-thread", "process": "cpu-process"}


def _registry(enable_tasks: int, starts: dict, cond: threading.Condition):
    from servicescheduler.scheduling.registry import TaskRegistry
    from servicescheduler.scheduling.triggers import every

    def recorder(name: str):
        def body() -> None:
            with cond:
                starts[name].append(time.monotonic())
                cond.notify_all()

        return body

    registry = TaskRegistry()
    registry.register("manual", recorder("manual"), trigger=every(3600).seconds)
    for i in range(5):
        registry.register(f"idle-{i}", lambda: None, trigger=every(3600).seconds)
    for i in range(enable_tasks):
        registry.register(f"en-{i}", recorder(f"en-{i}"), trigger=every(3600).seconds, enabled=False)
    registry.register("cpu-thread", lambda: cpu_burn(2.0), trigger=every(3600).seconds, enabled=False)
    registry.register("cpu-process", cpu_burn_2s, trigger=every(3600).seconds, enabled=False, executor="process")
    return registry


def _add_bench_routes(app, starts: dict, cond: threading.Condition) -> None:
    service = app.state.servicescheduler  # its engine exists once the lifespan has started it
    mode: dict[str, str | None] = {"task": None}
    stop = threading.Event()
    switching = threading.Lock()

    def drive() -> None:  # keeps the load task running; bounded by stop and a run cap
        for _ in range(100_000):
            if stop.wait(0.02):
                return
            with switching:  # a mode change cannot slip between reading the mode and starting its run
                name = mode["task"]
                if name and not service.application.scheduler.is_running(name):
                    service.application.scheduler.trigger(name, actor="bench")

    threading.Thread(target=drive, name="bench-load", daemon=True).start()

    @app.get("/_bench/started/{name}")
    def started(name: str, after: float) -> dict:
        with cond:
            cond.wait_for(lambda: any(t > after for t in starts[name]), timeout=3)
            return {"t": next((t for t in starts[name] if t > after), None)}

    @app.post("/_bench/noop")
    def noop() -> dict:  # a sync route, as /run's: request sent → route body is the HTTP floor
        return {"t": time.monotonic()}

    @app.post("/_bench/lease")
    def lease() -> dict:  # /run's database write alone, server side (a manual run's lease)
        coordinator = service.application.scheduler.coordinator
        run_id = f"probe-{time.monotonic_ns()}"
        started = time.perf_counter()
        coordinator.acquire("lease-probe", run_id, "manual")
        seconds = time.perf_counter() - started
        coordinator.abandon("lease-probe", run_id)
        return {"seconds": seconds}

    @app.post("/_bench/load/{kind}")
    def load(kind: str) -> dict:
        scheduler = service.application.scheduler
        with switching:
            mode["task"] = LOAD_TASKS.get(kind)
        # A 2 s burn cannot be interrupted: the previous mode's run must end before this mode's
        # samples start, or "idle" (and "process" after "thread") would be measured beside it.
        others = [task for task in LOAD_TASKS.values() if task != mode["task"]]
        deadline = time.monotonic() + 30  # the first process run spawns the pool
        while time.monotonic() < deadline and (
            any(scheduler.is_running(task) for task in others)
            or (mode["task"] and not scheduler.is_running(mode["task"]))
        ):
            time.sleep(0.01)
        return {"mode": kind, "others_running": [task for task in others if scheduler.is_running(task)]}


def serve(port: int, enable_tasks: int) -> None:
    """Subprocess entry: the real app with the bench registry, on 127.0.0.1:`port`."""
    ensure_path()
    import uvicorn

    from bench.common import bench_settings
    from server import create_app

    starts: dict = defaultdict(list)
    cond = threading.Condition()
    settings = bench_settings(Path(tempfile.mkdtemp(prefix="bench-http-")), process_workers=1)
    app = create_app(settings, _registry(enable_tasks, starts, cond))
    _add_bench_routes(app, starts, cond)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


class AppProcess:
    """Starts `serve` in a subprocess and gives an httpx client to it; a context manager."""

    def __init__(self, enable_tasks: int) -> None:
        from devtools.tansu import die_with_parent, free_port

        self.port = free_port()
        env = dict(os.environ, LOG_LEVEL="WARNING", PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.web.measure", str(self.port), str(enable_tasks)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=die_with_parent(),
        )

    def __enter__(self):
        import httpx

        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", headers=AUTH, timeout=30)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if self.client.get("/health").status_code == 200:
                    return self.client
            except Exception:
                pass
            time.sleep(0.1)
        self.__exit__()
        stderr = self.proc.stderr.read() if self.proc.stderr else b""  # bytes: Popen without text=True
        raise RuntimeError("bench app did not start: " + stderr.decode(errors="replace")[-500:])

    def __exit__(self, *exc: object) -> None:
        self.client.close()
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def _reaction(client, path: str, name: str) -> float | None:
    """Seconds from sending `path` to the task body starting (None if it did not start)."""
    for _ in range(200):  # a previous manual run may still be finishing: 409, retry
        sent = time.monotonic()
        response = client.post(path)
        if response.status_code != 409:
            break
        time.sleep(0.002)
    started = client.get(f"/_bench/started/{name}", params={"after": sent}).json()["t"]
    return None if started is None else started - sent


def measure_reaction(quick: bool) -> dict:
    """Benchmark 4: POST /tasks/manual/run and POST /tasks/en-i/enable to body start."""
    n = SAMPLES["quick" if quick else "full"]["reaction"]
    series: dict[str, list[float]] = {"run": [], "enable": [], "http": [], "lease": []}
    with AppProcess(enable_tasks=n) as client:
        time.sleep(0.5)
        for i in range(n):  # interleaved: a run, an enable and the two floors they are made of
            for kind, path, name in (
                ("run", "/tasks/manual/run", "manual"),
                ("enable", f"/tasks/en-{i}/enable", f"en-{i}"),
            ):
                value = _reaction(client, path, name)
                if value is not None:
                    series[kind].append(value)
                time.sleep(0.005)
            sent = time.monotonic()
            series["http"].append(client.post("/_bench/noop").json()["t"] - sent)
            time.sleep(0.005)
            series["lease"].append(client.post("/_bench/lease").json()["seconds"])
            time.sleep(0.005)
    return {
        "samples": n,
        **{kind: summarize(values, 1000) for kind, values in series.items()},
        "raw_ms": {kind: [round(v * 1000, 3) for v in values] for kind, values in series.items()},
    }


def measure_web(quick: bool) -> dict:
    """Benchmark 6: GET /tasks idle, beside a CPU task in a thread, and in a process (interleaved)."""
    n = SAMPLES["quick" if quick else "full"]["web"]
    rounds = 5
    samples: dict[str, list[float]] = {"idle": [], "thread": [], "process": []}
    with AppProcess(enable_tasks=0) as client:
        for _ in range(20):
            client.get("/tasks")  # warm-up
        client.post("/_bench/load/process")  # spawns the process pool before measuring
        time.sleep(2.5)
        for _ in range(rounds):
            for mode, values in samples.items():
                still = client.post(f"/_bench/load/{mode}").json()["others_running"]
                if still:
                    raise RuntimeError(f"benchmark 6: {still} still running when the {mode!r} samples start")
                for _ in range(n // rounds):
                    started = time.perf_counter()
                    client.get("/tasks").raise_for_status()
                    values.append(time.perf_counter() - started)
        client.post("/_bench/load/idle")
    return {
        "samples_per_mode": n,
        **{mode: summarize(v, 1000) for mode, v in samples.items()},
        "raw_ms": {mode: [round(x * 1000, 3) for x in v] for mode, v in samples.items()},
    }


if __name__ == "__main__":
    serve(int(sys.argv[1]), int(sys.argv[2]))
