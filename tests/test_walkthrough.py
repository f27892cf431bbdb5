"""The README's walkthrough, run line by line as written: `make run` serves, the shell lines of
"terminal 2" run in bash. Only what a reader would change is changed: the port (a free one), the
broker (this session's Tansu, on a topic of its own) and where the data files go."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from devtools.tansu import free_port
from tests.conftest import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parent.parent


def walkthrough() -> list[str]:
    """The shell lines of the README's walkthrough block, comments dropped."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Walkthrough") :]
    block = section[section.index("```sh\n") + len("```sh\n") :]
    block = block[: block.index("```")]
    return [re.sub(r"\s+# .*$", "", line).strip() for line in block.splitlines() if line.strip()]


def test_the_walkthrough_block_is_what_this_test_runs() -> None:
    lines = walkthrough()
    assert lines[0] == "make run" and lines[1] == "TOKEN=$(cat data/admin_token)"
    assert any(line.startswith("make produce ") for line in lines)
    assert all(line.startswith(("make ", "TOKEN=", "curl ")) for line in lines), lines


def test_the_readme_walkthrough_works(kafka, kafka_topic, tmp_path) -> None:
    port = free_port()
    (tmp_path / "data").mkdir()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
        "KAFKA_TOPICS": kafka_topic,
        "KAFKA_GROUP_ID": f"walkthrough-{port}",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'scheduler.db'}",
        "ADMIN_TOKEN_FILE": str(tmp_path / "data" / "admin_token"),
    }
    env.pop("ADMIN_TOKEN", None)
    lines = walkthrough()
    server = subprocess.Popen(
        ["make", "-s", "-C", str(ROOT), "run", f"PORT={port}"],  # lines[0], on this test's port
        env=env,
        stdout=(tmp_path / "server.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            try:
                return httpx.get(f"{base}/ready", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, timeout=90, interval=0.2)
        outputs = _terminal_two(lines[1:], port, env, cwd=tmp_path)
        tasks = json.loads(outputs["curl -s localhost:8000/tasks | python3 -m json.tool"])
        assert {task["name"] for task in tasks} == {"notifications", "cleanup", "report"}
        consumer = json.loads(
            next(out for line, out in outputs.items() if line.startswith("curl -s localhost:8000/consumer"))
        )
        # /ready gives a new consumer its grace while it joins the group: a reader this quick may
        # still see it starting; it must be consuming, not failing.
        assert consumer["state"] in ("starting", "running") and consumer["restarts"] == 0, consumer
        assert json.loads(outputs[next(line for line in outputs if "/tasks/report/run" in line)])["run_id"]
        report = json.loads(outputs["curl -s localhost:8000/reports/latest"])
        assert "events" in json.dumps(report)
        # What the walkthrough promises: the 200 events are all accounted for (stored or dead-lettered).
        counted = wait_until(lambda: _settled(base), timeout=60)
        assert counted == 200, counted
        # The supervisor publishes `running` at its next check of a worker that consumes.
        wait_until(lambda: httpx.get(f"{base}/consumer", timeout=5).json()["state"] == "running", timeout=30)
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # what a terminal's Ctrl-C does, to the whole group
        try:
            assert server.wait(timeout=60) in (0, -signal.SIGTERM)  # make itself dies of the signal
            log = (tmp_path / "server.log").read_text()
            assert "Application shutdown complete." in log and "Traceback" not in log, log[-3000:]
        finally:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGKILL)


def _settled(base: str) -> int | None:
    status = httpx.get(f"{base}/consumer", timeout=5).json()
    total = status["events_stored"] + status["dead_lettered"]
    return total if total >= 200 else None


def _terminal_two(lines: list[str], port: int, env: dict[str, str], *, cwd: Path) -> dict[str, str]:
    """Runs the lines in one bash session (so TOKEN carries over); returns each line's output.

    `curl .../reports/latest` is retried until it answers 200: the report run it follows was only
    accepted (202) one line before, as a reader typing the next command would give it time to.
    """
    outputs: dict[str, str] = {}
    state = ""
    for line in lines:
        command = line.replace("localhost:8000", f"localhost:{port}").replace("make ", f"make -s -C {ROOT} ", 1)
        for _ in range(50):
            result = subprocess.run(
                ["bash", "-c", f"set -euo pipefail\n{state}\n{command}"],
                cwd=cwd,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert result.returncode == 0, f"{line!r} failed: {result.stderr[-2000:]}"
            if "/reports/latest" not in line or '"detail"' not in result.stdout:
                break
            time.sleep(0.2)  # polling for the report, bounded by the loop
        else:
            raise AssertionError(f"{line!r} kept answering {result.stdout!r}")
        if line.startswith("TOKEN="):
            state += line + "\n"
        outputs[line] = result.stdout
    return outputs
