"""kill -9 at a random moment, restart, repeat: no run that started is ever lost.

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
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from devtools.tansu import free_port
from storage.records import OUTCOMES
from tests.conftest import ADMIN_TOKEN, AUTH
from tests.kafka_fixtures import Producer

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
CYCLES = 6
KAFKA_CYCLES = 5
PARTITIONS = 3  # the kafka_topic fixture's
PERSIST_MARGIN_SECONDS = 0.2  # a run's start is stored within ~100 ms (the recorder's batch window)
STARTUP_TIMEOUT_SECONDS = 30.0


class Server:
    """One server subprocess on a loopback port."""

    def __init__(self, env: dict[str, str], workdir: Path, log_path: Path) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        # cwd is the test's own directory: a developer's .env in the checkout must not apply.
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "server:app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--no-access-log",
                ],
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
        return dict(connection.execute("SELECT run_id, outcome FROM task_runs").fetchall())
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
    unfinished = {run_id: rows[run_id] for run_id in due if run_id in rows and rows[run_id] not in OUTCOMES}
    assert not missing, f"{len(missing)} of {len(due)} started runs have no row: {missing[:5]}"
    assert not unfinished, f"runs without a final outcome: {list(unfinished.items())[:5]}"
    tally.checked = len(due)
    tally.interrupted |= {run_id for run_id in due if rows[run_id] == "interrupted"}


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
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


def _kill9_loop(tmp_path: Path, env: dict[str, str], cycles: int, settle: Hook, drain: Hook) -> Tally:
    """`cycles` times: start, let it work a random while (after `settle`), kill -9, restart and
    check the run history; then `drain`, SIGTERM and check again (every run, no margin)."""
    db_path, witness_path, log_path = tmp_path / "kill9.db", tmp_path / "witness.txt", tmp_path / "server.log"
    rng = random.Random()
    tally = Tally()
    ends: list[End] = []
    server = Server(env, tmp_path, log_path)
    try:
        for _cycle in range(cycles):
            server.wait_ready()
            settle(server)
            tally.manual += server.trigger_now_and_then(time.monotonic() + rng.uniform(0.3, 2.5))
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


def _nothing(server: Server) -> None:
    return None


@pytest.mark.timeout(240)
def test_kill9_loop_loses_no_run(tmp_path: Path) -> None:
    began = time.monotonic()
    tally = _kill9_loop(tmp_path, _env(tmp_path), CYCLES, _nothing, _nothing)
    print(
        f"kill9: {CYCLES} cycles, {tally.checked} runs checked, {len(tally.interrupted)} interrupted rows, "
        f"{tally.manual} manual runs, {time.monotonic() - began:.1f} s"
    )
    assert tally.interrupted, "no kill landed mid-run: the loop proved nothing about interrupted runs"


class Stream:
    """Produces uniquely numbered events from a thread until stopped."""

    def __init__(self, producer: Producer, topic: str) -> None:
        self.producer, self.topic = producer, topic
        self.produced: list[str] = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kill9-stream", daemon=True)

    def start(self) -> Stream:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            while not self._stop.wait(0.05):
                batch = [
                    {"id": f"k{len(self.produced) + i}", "type": "order.created", "data": {"n": i}} for i in range(10)
                ]
                self.producer.send(self.topic, batch)  # flushes: acknowledged before counted
                self.produced.extend(event["id"] for event in batch)
        except BaseException as exc:  # reported by stop(): a silent producer would prove nothing
            self.error = exc

    def stop(self) -> list[str]:
        """Stops producing; returns the ids of every acknowledged event."""
        self._stop.set()
        self._thread.join(timeout=60)
        assert not self._thread.is_alive()
        assert self.error is None, f"the producer failed: {self.error!r}"
        return self.produced


def _wait_assigned(server: Server) -> None:
    """Waits until the consumer owns every partition: killing a member while its group is still
    rebalancing can wedge the group on Tansu (a broker quirk, not what this test is about)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        body = httpx.get(f"{server.base_url}/consumer", timeout=2).json()
        if len(body.get("assigned_partitions") or []) == PARTITIONS:
            return
        time.sleep(0.1)
    raise AssertionError(f"consumer not assigned within {STARTUP_TIMEOUT_SECONDS} s: {body}")


def _stored_events(db_path: Path) -> tuple[list[str], int]:
    connection = sqlite3.connect(db_path, timeout=10)
    try:
        ids = [row[0] for row in connection.execute("SELECT id FROM events")]
        return ids, connection.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
    finally:
        connection.close()


@pytest.mark.kafka
@pytest.mark.timeout(300)
def test_kill9_loop_with_a_stream_stores_every_event_exactly_once(
    tmp_path: Path, kafka, kafka_topic: str, kafka_group: str, kafka_producer: Producer
) -> None:
    began = time.monotonic()
    env = _env(
        tmp_path,
        KAFKA_ENABLED="true",
        KAFKA_BOOTSTRAP_SERVERS=kafka.bootstrap,
        KAFKA_TOPICS=kafka_topic,
        KAFKA_GROUP_ID=kafka_group,
        KAFKA_SESSION_TIMEOUT_MS="6000",
        KAFKA_HEARTBEAT_INTERVAL_MS="1000",
        KAFKA_MAX_POLL_INTERVAL_MS="10000",
        KAFKA_POLL_TIMEOUT_MS="100",
        KAFKA_REQUEST_TIMEOUT_MS="5000",
        KAFKA_STOP_TIMEOUT_SECONDS="5",
        CONSUMER_BACKOFF_BASE_SECONDS="0.2",
        CONSUMER_BACKOFF_CAP_SECONDS="1",
    )
    stream = Stream(kafka_producer, kafka_topic).start()
    produced: list[str] = []

    def drain(server: Server) -> None:
        produced.extend(stream.stop())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(_stored_events(tmp_path / "kill9.db")[0]) < len(produced):
            time.sleep(0.2)

    try:
        tally = _kill9_loop(tmp_path, env, KAFKA_CYCLES, _wait_assigned, drain)
    finally:
        stream.stop()
    stored, dead = _stored_events(tmp_path / "kill9.db")
    assert len(stored) == len(set(stored))  # exactly once
    assert set(stored) == set(produced), f"{len(set(produced) - set(stored))} of {len(produced)} events lost"
    assert dead == 0
    print(
        f"kill9+kafka: {KAFKA_CYCLES} cycles, {len(produced)} events stored once, {tally.checked} runs checked, "
        f"{len(tally.interrupted)} interrupted rows, {time.monotonic() - began:.1f} s"
    )
