"""What the soak samples of the server process, read from /proc/<pid>/ (Linux).

RSS and threads come from `status`; open descriptors are the entries of `fd/`; SQLite connections
are the descriptors open on the database file itself (each connection holds exactly one; the
`-wal`/`-shm` files are counted apart).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcessSample:
    """One reading of the server process; None where /proc could not be read (process gone)."""

    rss_mib: float | None
    threads: int | None
    fds: int | None
    db_connections: int | None
    db_side_files: int | None

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def read_status(pid: int) -> tuple[float | None, int | None]:
    """(RSS in MiB, thread count) of `pid` from /proc/<pid>/status."""
    rss: float | None = None
    threads: int | None = None
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    rss = round(int(line.split()[1]) / 1024, 2)
                elif line.startswith("Threads:"):
                    threads = int(line.split()[1])
    except OSError:
        return None, None
    return rss, threads


def fd_targets(pid: int) -> list[str] | None:
    """What each open descriptor of `pid` points at (a path, `socket:[…]`, `pipe:[…]`, …)."""
    directory = f"/proc/{pid}/fd"
    try:
        names = os.listdir(directory)
    except OSError:
        return None
    targets = []
    for name in names:
        try:
            targets.append(os.readlink(f"{directory}/{name}"))
        except OSError:  # closed between listdir and readlink
            continue
    return targets


def count_database_handles(targets: list[str], database: Path | None) -> tuple[int, int]:
    """(descriptors on the database file, descriptors on its -wal/-shm/-journal files)."""
    if database is None:
        return 0, 0
    main = str(database.resolve())
    side = {main + suffix for suffix in ("-wal", "-shm", "-journal")}
    return sum(t == main for t in targets), sum(t in side for t in targets)


def sample_process(pid: int, database: Path | None) -> ProcessSample:
    """Reads RSS, threads, descriptors and SQLite handles of `pid` now."""
    rss, threads = read_status(pid)
    targets = fd_targets(pid)
    if targets is None:
        return ProcessSample(rss, threads, None, None, None)
    connections, side = count_database_handles(targets, database)
    return ProcessSample(rss, threads, len(targets), connections if database else None, side if database else None)
