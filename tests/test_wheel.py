"""The library as users get it: a wheel built from this repository, installed into a fresh
virtualenv, serving examples/embed/app.py with uvicorn from that virtualenv, with no file of this
repository on sys.path."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from devtools.tansu import free_port
from tests.conftest import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # the fixture builds and installs a wheel

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "embed" / "app.py"
ALICE, BOB = {"X-API-Key": "key-alice"}, {"X-API-Key": "key-bob"}


@dataclass(frozen=True)
class Installed:
    python: Path
    bin: Path
    added: set[str]  # what installing the wheel (alone) added to site-packages


def _run(*command: object, cwd: Path | None = None, timeout: float = 600) -> str:
    result = subprocess.run(
        [str(part) for part in command], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=_clean_env()
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell: no PYTHONPATH, no settings of this test run."""
    keep = ("PATH", "HOME", "LANG", "TMPDIR", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS")
    return {key: value for key, value in os.environ.items() if key in keep} | extra


def _site_packages(python: Path) -> Path:
    return Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    work = tmp_path_factory.mktemp("wheel")
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-q", "-w", work, ROOT)
    (wheel,) = work.glob("servicescheduler-*.whl")
    _run(sys.executable, "-m", "venv", work / "venv")
    python = work / "venv" / "bin" / "python"
    pip = (python, "-m", "pip", "--disable-pip-version-check", "-q")
    # The wheel with its dependencies and uvicorn, then the wheel taken out again: what remains
    # is what it needs; installing it alone on top shows exactly what it adds.
    _run(*pip, "install", wheel, "uvicorn")
    _run(*pip, "uninstall", "-y", "servicescheduler")
    site = _site_packages(python)
    before = {path.name for path in site.iterdir()}
    _run(*pip, "install", "--no-deps", wheel)
    added = {path.name for path in site.iterdir()} - before
    return Installed(python, python.parent, added)


def test_the_wheel_adds_one_top_level_package(installed: Installed) -> None:
    packages = {name for name in installed.added if not name.endswith(".dist-info")}
    assert packages == {"servicescheduler"}, installed.added
    assert len(installed.added) == 2, installed.added  # and its .dist-info


@pytest.fixture
def example(installed: Installed, tmp_path: Path) -> Iterator[tuple[httpx.Client, Path]]:
    """examples/embed/app.py served by uvicorn from the fresh virtualenv, from a folder of its own."""
    folder = tmp_path / "shop"
    folder.mkdir()
    shutil.copy(EXAMPLE, folder / "app.py")
    where = _run(installed.python, "-c", "import servicescheduler; print(servicescheduler.__file__)", cwd=folder)
    assert where.startswith(str(installed.python.parent.parent)), where  # the installed copy, not the repo's
    port = free_port()
    database = tmp_path / "shop.db"
    log = (tmp_path / "uvicorn.log").open("w")
    process = subprocess.Popen(
        [installed.python, "-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port", str(port)],
        cwd=folder,
        env=_clean_env(EXAMPLE_DATABASE_URL=f"sqlite:///{database}"),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    try:

        def up() -> bool:
            assert process.poll() is None, (tmp_path / "uvicorn.log").read_text()[-3000:]
            try:
                return client.get("/hello").status_code == 401
            except httpx.TransportError:
                return False

        wait_until(up, timeout=60, interval=0.1)
        yield client, database
    finally:
        client.close()
        process.send_signal(signal.SIGTERM)
        try:
            # uvicorn re-raises the signal once shut down: a clean stop is -SIGTERM with the lifespan done.
            assert process.wait(timeout=40) in (0, -signal.SIGTERM)
            output = (tmp_path / "uvicorn.log").read_text()
            assert "Application shutdown complete." in output, output[-3000:]
        finally:
            if process.poll() is None:
                process.kill()
            log.close()


def test_the_example_app_embeds_the_installed_library(example: tuple[httpx.Client, Path]) -> None:
    client, database = example
    assert client.get("/hello", headers=ALICE).json()["hello"] == "alice"  # the host's own route
    # The router under the host's prefix, behind the host's auth (include_router dependencies).
    assert client.get("/ops/tasks").status_code == 401
    names = {task["name"] for task in client.get("/ops/tasks", headers=ALICE).json()}
    assert {"heartbeat", "nightly-summary", "notifications", "cleanup", "report"} == names
    # Tasks run.
    wait_until(
        lambda: len(client.get("/ops/tasks/heartbeat/runs", params={"outcome": "success"}, headers=ALICE).json()) >= 2,
        timeout=30,
    )
    # Mutations need the host's auth (a bearer token is nothing to it) and the audit names its actor.
    bearer = {"Authorization": "Bearer anything"}
    assert client.post("/ops/tasks/nightly-summary/run", headers=bearer).status_code == 401
    assert client.post("/ops/tasks/nightly-summary/run", headers=BOB).status_code == 202
    audit = wait_until(lambda: client.get("/ops/audit", params={"target": "nightly-summary"}, headers=ALICE).json())
    assert [(entry["actor"], entry["action"]) for entry in audit] == [("bob", "run")]
    # The dashboard, mounted under the prefix, links within its mount.
    page = client.get("/ops/ui/")
    assert page.status_code == 200 and 'href="/ops/ui/tasks/heartbeat"' in page.text
    # Every table the library made carries its prefix, the migrations' version table included.
    with sqlite3.connect(database) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables and all(name.startswith("ss_") for name in tables), sorted(tables)


def test_the_console_script_migrates_a_database(installed: Installed, tmp_path: Path) -> None:
    database = tmp_path / "migrated.db"
    result = subprocess.run(
        [installed.bin / "servicescheduler", "migrate"],
        cwd=tmp_path,
        env=_clean_env(DATABASE_URL=f"sqlite:///{database}"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(database) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "ss_task_runs" in tables and "ss_alembic_version" in tables, sorted(tables)
