"""The real service (`python -m uvicorn server:app`, built-in tasks, SQLite in a temp dir) as a
subprocess on 127.0.0.1, for the benchmarks that measure it from outside (8 and 9)."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import ADMIN_TOKEN, ROOT, proc_status
from devtools.serve import uvicorn_command

READY_TIMEOUT_S = 40.0


class Service:
    """`uvicorn server:app` in a subprocess; `ready_seconds` is spawn → first 200 from /ready."""

    def __init__(self, bootstrap: str | None, topic: str = "events", extra_env: dict | None = None) -> None:
        from devtools.tansu import die_with_parent, free_port

        self.tmp = Path(tempfile.mkdtemp(prefix="bench-svc-"))
        self.port = free_port()
        env = dict(
            os.environ,
            PYTHONPATH=str(ROOT),
            LOG_LEVEL="WARNING",
            ADMIN_TOKEN=ADMIN_TOKEN,
            ADMIN_TOKEN_FILE=str(self.tmp / "token"),
            DATABASE_URL=f"sqlite:///{self.tmp / 'svc.db'}",
            KAFKA_ENABLED="true" if bootstrap else "false",
            KAFKA_TOPICS=topic,
            KAFKA_BOOTSTRAP_SERVERS=bootstrap or "",
            **(extra_env or {}),
        )
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            uvicorn_command(self.port, "--log-level", "warning", "--no-access-log"),
            cwd=self.tmp,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=die_with_parent(),
        )
        self.ready_seconds: float | None = None
        self.last_status: int | None = None
        self.stop_seconds: float | None = None  # set by stop_in_background once the stop returns

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> float | None:
        """Polls /ready every 20 ms until 200 (bounded); returns the seconds since spawn or None."""
        import httpx

        deadline = self.started + timeout
        with httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=2) as client:
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    self.last_status = client.get("/ready").status_code
                    if self.last_status == 200:
                        self.ready_seconds = time.monotonic() - self.started
                        return self.ready_seconds
                except httpx.HTTPError:
                    pass
                time.sleep(0.02)
        return None

    def probe(self) -> dict:
        """RSS and threads of the service process."""
        return proc_status(self.proc.pid)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 20 s."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stderr:
            self.proc.stderr.close()
