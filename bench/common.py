"""Shared harness helpers: quiet settings, temp databases, process probes, bounded waits."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ADMIN_TOKEN = "bench-admin-token"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def ensure_path() -> None:
    """Makes the repository root importable (for `python bench/...` and subprocesses)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


def bench_settings(tmp: Path, **overrides: object):
    """Settings for a benchmark: SQLite under `tmp`, no Kafka, WARNING logs, known token."""
    ensure_path()
    from servicescheduler.settings import load_settings

    values: dict[str, object] = dict(
        database_url=f"sqlite:///{tmp / 'bench.db'}",
        admin_token=ADMIN_TOKEN,
        admin_token_file=tmp / "admin_token",
        log_level="WARNING",
        log_format="json",
        kafka_enabled=False,
        worker_threads=8,
        shutdown_grace_seconds=5,
        builtin_tasks="",
    )
    values.update(overrides)
    return load_settings({}, **values)


def open_database(settings):
    """A migrated Database for `settings`."""
    from servicescheduler.logs import configure_logging
    from servicescheduler.storage.db import Database
    from servicescheduler.storage.migrate import upgrade

    configure_logging("WARNING", "json")
    database = Database(settings)
    upgrade(database.engine)
    return database


def proc_status(pid: int | str = "self") -> dict:
    """RSS (MiB) and thread count of a process, from /proc (Linux)."""
    values: dict = {}
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    values["rss_mib"] = round(int(line.split()[1]) / 1024, 1)
                elif line.startswith("Threads:"):
                    values["threads"] = int(line.split()[1])
    except OSError:
        pass
    return values


def process_cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU seconds of a process (children excluded), from /proc."""
    if pid == "self":
        times = os.times()
        return times.user + times.system
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for(predicate: Callable[[], object], timeout: float, interval: float = 0.005) -> object:
    """Polls `predicate` until truthy or `timeout` s passed; returns its last value."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = predicate()
    return value


def cpu_burn(seconds: float) -> int:
    """Pure-Python CPU-bound work for `seconds` (holds the GIL); returns a checksum."""
    end = time.perf_counter() + seconds
    total = 0
    while time.perf_counter() < end:
        for i in range(2000):
            total = (total + i * i) % 1_000_003
    return total


def cpu_burn_2s() -> int:
    """Module-level 2 s CPU task (picklable for executor="process")."""
    return cpu_burn(2.0)


def machine_info() -> dict:
    """CPU count, model, Python version and platform, for the results file."""
    import platform

    model = ""
    try:
        with open("/proc/cpuinfo") as handle:
            model = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), "")
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "host": platform.node(),
    }
