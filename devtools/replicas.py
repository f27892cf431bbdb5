"""Real server processes for the multi-replica tests and benchmark 12: `uvicorn server:app` with its
own environment, its log in a file (never an unread pipe), killed with SIGKILL or stopped with SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import textwrap
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from devtools.serve import uvicorn_command
from devtools.tansu import free_port

ROOT = Path(__file__).resolve().parents[1]
ADMIN_TOKEN = "cluster-test-token"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

TASK_MODULE = textwrap.dedent("""
    import time

    from servicescheduler.scheduling import every, tasks

    @tasks.task("tick", trigger=every(1).seconds, description="one run per second, cluster-wide")
    def tick() -> None:
        pass

    @tasks.task("slow", trigger=every(4).seconds, description="holds its lease for 3 s")
    def slow() -> None:
        time.sleep(3)  # the task's work: it holds its lease this long (what the failover test kills)
""")


def write_task_module(directory: Path, name: str = "clustertasks") -> str:
    """Writes the test tasks as an importable module in `directory`; returns its name."""
    (directory / f"{name}.py").write_text(TASK_MODULE)
    return name


class ServerProcess:
    """One `uvicorn server:app` process (or `--workers N` of them) on a loopback port."""

    def __init__(self, directory: Path, name: str, env: dict[str, str], workers: int = 1) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = directory / f"{name}.log"
        environ = {
            **os.environ,
            "PYTHONPATH": f"{ROOT}{os.pathsep}{directory}",
            "KAFKA_ENABLED": "false",
            "ADMIN_TOKEN": ADMIN_TOKEN,
            "BUILTIN_TASKS": "",
            "SHUTDOWN_GRACE_SECONDS": "5",
            **env,
        }
        command = uvicorn_command(self.port)
        if workers > 1:
            command += ["--workers", str(workers)]
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                command, cwd=directory, env=environ, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        self.client = httpx.Client(base_url=self.url, timeout=5)

    def ready(self) -> bool:
        """True once the API answers (fails fast if the process died)."""
        assert self.process.poll() is None, f"{self.name} exited: {self.log_tail()}"
        try:
            return self.client.get("/health").status_code == 200
        except httpx.HTTPError:
            return False

    def get(self, path: str, **params: Any) -> Any:
        """GET `path` as JSON, asserting 200."""
        response = self.client.get(path, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def post(self, path: str, json: Any = None) -> httpx.Response:
        """POST with the admin token."""
        return self.client.post(path, json=json, headers=AUTH)

    def patch(self, path: str, json: Any) -> httpx.Response:
        """PATCH with the admin token."""
        return self.client.patch(path, json=json, headers=AUTH)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when a container is OOM-killed."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM and wait (uvicorn's graceful shutdown); SIGKILL if it hangs."""
        self.client.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def log_tail(self, lines: int = 30) -> str:
        """The end of the process's log, for assertion messages."""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def epoch(text: str | None) -> float | None:
    """An API timestamp (ISO 8601, `Z`) as epoch seconds."""
    return None if text is None else datetime.fromisoformat(text).timestamp()


def wait_ready(servers: list[ServerProcess], timeout: float = 60.0) -> None:
    """Waits until every server answers /health; fails naming the one that did not."""
    deadline = time.monotonic() + timeout
    for server in servers:
        while not server.ready():
            assert time.monotonic() < deadline, f"{server.name} did not start: {server.log_tail()}"
            time.sleep(0.1)  # poll interval of the readiness wait
