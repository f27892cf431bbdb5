"""The kill -9 loop's machinery: a server subprocess, the run witness and the history check.

The real server runs as a subprocess (`python -m uvicorn server:app`) on a SQLite file with the
short tasks of tests/crashing/tasks.py (TASK_MODULES), which witness every start in a file of
their own. After each SIGKILL the server is restarted; once it is up, every run witnessed at least
200 ms before the kill must have a row with a final outcome (runs the kill cut short are closed
`interrupted` by the restart). The loop ends with a SIGTERM, after which every witnessed run must
have its final outcome.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from devtools.serve import uvicorn_command
from devtools.tansu import free_port
from servicescheduler.vocabulary import FINAL_OUTCOMES, RunOutcome
from tests.conftest import ADMIN_TOKEN, AUTH

ROOT = Path(__file__).resolve().parent.parent.parent
PERSIST_MARGIN_SECONDS = 0.2  # a run's start is stored within ~100 ms (the recorder's batch window)
STARTUP_TIMEOUT_SECONDS = 30.0
MID_RUN_TIMEOUT_SECONDS = 20.0  # crash-long starts every second and runs 0.5-2 s


class Server:
    """One server subprocess on a loopback port."""

    def __init__(self, env: dict[str, str], workdir: Path, log_path: Path) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        # cwd is the test's own directory: a developer's .env in the checkout must not apply.
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(
                uvicorn_command(self.port, "--no-access-log"),
                cwd=workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self) -> None:
        """Waits until /health answers 200 (start-up recovery has run by then)."""
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"server exited with {self.process.returncode}"
            try:
                if httpx.get(f"{self.base_url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"server not healthy within {STARTUP_TIMEOUT_SECONDS} s")

    def trigger_now_and_then(self, until: float) -> int:
        """Starts manual runs over HTTP until `until` (monotonic); returns how many were accepted."""
        accepted = 0
        with httpx.Client(base_url=self.base_url, headers=AUTH, timeout=2) as client:
            while time.monotonic() < until:
                response = client.post("/tasks/crash-manual/run")
                assert response.status_code in (202, 409), response.text
                accepted += response.status_code == 202
                time.sleep(min(max(0.0, until - time.monotonic()), random.uniform(0.05, 0.3)))
        return accepted

    def kill9(self) -> tuple[float, float]:
        """SIGKILLs the server; returns (epoch time just before the signal, time it was reaped)."""
        signalled_at = time.time()
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        return signalled_at, time.time()

    def terminate(self) -> int:
        """SIGTERMs the server and waits for it to exit; returns its exit status."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)


@dataclass
class Tally:
    """What the loop checked."""

    checked: int = 0
    interrupted: set[str] = field(default_factory=set)
    manual: int = 0


def _witnessed(path: Path) -> dict[str, float]:
    if not path.exists():
        return {}
    lines = path.read_text().splitlines()
    return {run_id: float(at) for run_id, at in (line.split() for line in lines if line)}


def _rows(db_path: Path) -> dict[str, str]:
    connection = sqlite3.connect(db_path, timeout=10)
    try:
        return dict(connection.execute("SELECT run_id, outcome FROM ss_task_runs").fetchall())
    finally:
        connection.close()


@dataclass(frozen=True)
class End:
    """How one server process ended: signalled at, reaped at, and the margin its runs get."""

    signalled: float
    reaped: float
    margin: float


def _is_due(at: float, ends: list[End]) -> bool:
    """True if the run witnessed at `at` started at least its margin before its process was signalled."""
    # The process a run belongs to: the first one reaped after the run started (a run may start
    # between the test's clock reading and the signal's delivery).
    end = next((end for end in ends if end.reaped >= at), None)
    return end is not None and at <= end.signalled - end.margin


def _check(db_path: Path, witness_path: Path, ends: list[End], tally: Tally) -> None:
    """Every run that started `margin` before its process ended has a row with a final outcome."""
    rows = _rows(db_path)
    witnessed = _witnessed(witness_path)
    due = [run_id for run_id, at in witnessed.items() if _is_due(at, ends)]
    missing = [
        (run_id, [round(witnessed[run_id] - end.signalled, 3) for end in ends]) for run_id in due if run_id not in rows
    ]
    unfinished = {run_id: rows[run_id] for run_id in due if run_id in rows and rows[run_id] not in FINAL_OUTCOMES}
    assert not missing, f"{len(missing)} of {len(due)} started runs have no row: {missing[:5]}"
    assert not unfinished, f"runs without a final outcome: {list(unfinished.items())[:5]}"
    tally.checked = len(due)
    tally.interrupted |= {run_id for run_id in due if rows[run_id] == "interrupted"}


def _wait_mid_run(db_path: Path, witness_path: Path) -> None:
    """Waits until some run's row says running and the run began over the margin ago."""
    deadline = time.monotonic() + MID_RUN_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        witnessed = _witnessed(witness_path)  # a row whose run wrote no line yet does not count
        settled = time.time() - 2 * PERSIST_MARGIN_SECONDS
        running = [run_id for run_id, outcome in _rows(db_path).items() if outcome == RunOutcome.RUNNING]
        if any(run_id in witnessed and witnessed[run_id] <= settled for run_id in running):
            return
        time.sleep(0.02)
    raise AssertionError(f"no run was in flight within {MID_RUN_TIMEOUT_SECONDS} s: {_rows(db_path)}")


def server_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The server's whole environment: nothing inherited but PATH."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'kill9.db'}",
        "KAFKA_ENABLED": "false",
        "BUILTIN_TASKS": "",
        "TASK_MODULES": "tests.crashing.tasks",
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "ADMIN_TOKEN_FILE": str(tmp_path / "admin_token"),
        "LOG_LEVEL": "WARNING",
        "CRASH_WITNESS_FILE": str(tmp_path / "witness.txt"),
        "SHUTDOWN_GRACE_SECONDS": "1",
        "WORKER_THREADS": "8",
        **extra,
    }


Hook = Callable[[Server], None]


def kill9_loop(tmp_path: Path, env: dict[str, str], cycles: int, settle: Hook, drain: Hook) -> Tally:
    """`cycles` times: start, let it work a random while (after `settle`), kill -9, restart and
    check the run history; then `drain`, SIGTERM and check again (every run, no margin)."""
    db_path, witness_path, log_path = tmp_path / "kill9.db", tmp_path / "witness.txt", tmp_path / "server.log"
    rng = random.Random()
    tally = Tally()
    ends: list[End] = []
    server = Server(env, tmp_path, log_path)
    try:
        for cycle in range(cycles):
            server.wait_ready()
            settle(server)
            tally.manual += server.trigger_now_and_then(time.monotonic() + rng.uniform(0.3, 2.5))
            if cycle % 2:
                # Every other kill waits for a run in flight, so every loop kills mid-run at least
                # once however the random whiles fall on a slow machine.
                _wait_mid_run(db_path, witness_path)
            ends.append(End(*server.kill9(), PERSIST_MARGIN_SECONDS))
            server = Server(env, tmp_path, log_path)
            server.wait_ready()
            _check(db_path, witness_path, ends, tally)
        server.trigger_now_and_then(time.monotonic() + 1.0)
        drain(server)
        # uvicorn re-raises the signal after its graceful shutdown: -SIGTERM is a clean exit.
        assert server.terminate() in (0, -signal.SIGTERM)
        assert "Application shutdown complete." in log_path.read_text().splitlines()[-2]
        ends.append(End(time.time(), time.time(), 0.0))
        _check(db_path, witness_path, ends, tally)
    except BaseException:
        print(log_path.read_text()[-4000:])
        raise
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait(timeout=10)
    return tally
