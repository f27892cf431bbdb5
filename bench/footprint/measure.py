"""Benchmark 9: RSS and threads of the running service, and its start-up time to /ready.

The real service (`python -m uvicorn server:app`, built-in tasks, SQLite in a temp dir) runs as
a subprocess on 127.0.0.1, with the bench's broker, and with an unreachable broker address.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
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


def _startup(bootstrap: str | None, label: str, idle_s: float, stoppers: list) -> dict:
    """Start-up time and idle footprint; the service is stopped in the background (see `stoppers`)."""
    service = Service(bootstrap)
    try:
        seconds = service.wait_ready()
        time.sleep(idle_s)  # idle
        probe = service.probe()
        note = (
            ""
            if seconds is not None
            else f"no 200 from /ready within {READY_TIMEOUT_S:.0f} s (last status {service.last_status})"
        )
        entry = {"seconds": None if seconds is None else round(seconds, 3), **probe, "note": note}
        stoppers.append((entry, service, stop_in_background(service)))
        return entry
    except BaseException:
        service.stop()
        raise


def stop_in_background(service: Service) -> threading.Thread:
    """Graceful stop (SIGTERM, bounded) in a thread, timed into `service.stop_seconds`: a stop
    waits mostly on timeouts (consumer leaving its group, bootstrap bound), so the next
    measurement need not wait for it."""

    def run() -> None:
        started = time.monotonic()
        service.stop()
        service.stop_seconds = round(time.monotonic() - started, 2)

    thread = threading.Thread(target=run, name="bench-service-stop", daemon=True)
    thread.start()
    return thread


def measure(quick: bool, bootstrap: str | None, after_consume: Callable[[], dict] | None = None) -> dict:
    """Start-up and idle footprint without Kafka, with the bench broker and with an unreachable one.

    `after_consume()` (optional, from the pipeline) makes a service consume the
    benchmark's events and returns a note; the footprint is probed afterwards.
    """
    from devtools.tansu import free_port

    idle_s = 0.5 if quick else 2.0
    stoppers: list[tuple[dict, Service, threading.Thread]] = []
    out = {"idle, Kafka disabled": _startup(None, "no kafka", idle_s, stoppers)}
    if bootstrap:
        out["idle, broker reachable"] = _startup(bootstrap, "broker", idle_s, stoppers)
    out["start-up, broker unreachable"] = _startup(f"127.0.0.1:{free_port()}", "unreachable", idle_s, stoppers)
    if after_consume is not None:
        out["after consuming the benchmark events"] = after_consume()
    for entry, service, thread in stoppers:
        thread.join(30)
        entry["stop_s"] = service.stop_seconds
    return out
