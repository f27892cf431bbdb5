"""The soak's system under test: a Tansu broker and the real server (`python -m uvicorn server:app`)
as subprocesses on 127.0.0.1, on the database of bench.soak.database, with the soak tasks imported
through TASK_MODULES. Its log (JSON lines) goes to a file in the soak's temp directory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from bench.common import ADMIN_TOKEN, ROOT
from devtools.serve import uvicorn_command

TASK_MODULE = "bench.soak.tasks"
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 60.0
PARTITIONS = 3


class SoakService:
    """One server process; `start()` spawns it, `wait_ready()` polls /ready, `stop()` sends SIGTERM."""

    def __init__(self, workdir: Path, bootstrap: str, topic: str, database_url: str) -> None:
        from devtools.tansu import free_port

        self.workdir = workdir
        self.runs_file = workdir / "soak-runs.log"
        self.heap_file = workdir / "soak-heap.log"
        self.log_path = workdir / "server.log"
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = dict(
            os.environ,
            PYTHONPATH=str(ROOT),
            LOG_LEVEL="WARNING",
            LOG_FORMAT="json",
            ADMIN_TOKEN=ADMIN_TOKEN,
            ADMIN_TOKEN_FILE=str(workdir / "admin_token"),
            DATABASE_URL=database_url,
            KAFKA_ENABLED="true",
            KAFKA_BOOTSTRAP_SERVERS=bootstrap,
            KAFKA_TOPICS=topic,
            KAFKA_GROUP_ID=f"soak-{uuid.uuid4().hex[:8]}",
            # Tansu's first assignment of a group takes about session_timeout / 2.
            KAFKA_SESSION_TIMEOUT_MS="6000",
            KAFKA_HEARTBEAT_INTERVAL_MS="1000",
            TASK_MODULES=TASK_MODULE,
            SOAK_RUNS_FILE=str(self.runs_file),
            SOAK_HEAP_FILE=str(self.heap_file),
        )
        # As the Dockerfile ships the service: two glibc arenas, not eight per core (docs/reliability.md),
        # and the start-up objects frozen out of the collector's reach (GC_FREEZE_ON_START).
        self.env.setdefault("MALLOC_ARENA_MAX", "2")
        self.env.setdefault("GC_FREEZE_ON_START", "true")
        # The app as users serve it; a diagnostic run may swap in another launcher of `server:app`.
        self.command = uvicorn_command(self.port, "--log-level", "warning", "--no-access-log")
        self.proc: subprocess.Popen[bytes] | None = None
        self.exit_code: int | None = None
        self.stop_seconds: float | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None, "start() first"
        return self.proc.pid

    def start(self) -> SoakService:
        from devtools.tansu import die_with_parent

        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.command,
                cwd=self.workdir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent(signal.SIGKILL),
            )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, client: httpx.Client, timeout: float = READY_TIMEOUT_S) -> bool:
        """Polls /ready until 200 and the consumer has partitions (bounded); True when both."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.alive():
            try:
                if client.get("/ready").status_code == 200 and client.get("/consumer").json().get(
                    "assigned_partitions"
                ):
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        """SIGTERM (graceful: the scheduler drains and the recorder flushes), SIGKILL after the bound."""
        if self.proc is None:
            return
        started = time.monotonic()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.stop_seconds = round(time.monotonic() - started, 2)
        self.exit_code = self.proc.returncode

    def heap_sample(self) -> dict[str, Any]:
        """The latest line of the server's heap probe (bench.soak.heap), {} before the first."""
        try:
            lines = self.heap_file.read_text().splitlines()
            return {k: v for k, v in json.loads(lines[-1]).items() if k != "t"} if lines else {}
        except (OSError, ValueError):
            return {}

    def log_summary(self, top: int = 8) -> dict[str, Any]:
        """Counts of the server's log lines by level, and the most frequent warning/error events."""
        levels: Counter[str] = Counter()
        events: Counter[str] = Counter()
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return {"levels": {}, "top": []}
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                levels["unstructured"] += 1
                continue
            level = str(entry.get("level", "?")) if isinstance(entry, dict) else "?"
            levels[level] += 1
            if level in ("warning", "error", "critical") and isinstance(entry, dict):
                events[f"{level}: {entry.get('event')}"] += 1
        return {"levels": dict(levels), "top": events.most_common(top)}


def start_broker(topic: str) -> Any:
    """A Tansu broker on a free loopback port with `topic` created (3 partitions)."""
    from devtools.tansu import TansuBroker

    broker = TansuBroker().start()
    broker.create_topics([topic], partitions=PARTITIONS)
    return broker
