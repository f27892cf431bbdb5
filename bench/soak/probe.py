"""What the soak samples of the server process, read from /proc/<pid>/ (Linux).

RSS and threads come from `status`, with RSS split into anonymous memory (the heaps: Python's and
every C library's), file-backed pages and shared memory (e.g. SQLite's mapped `-shm` index), so a
growth can be told apart; open descriptors are the entries of `fd/`; SQLite connections are the
descriptors open on the database file itself (each connection holds exactly one; the
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
    rss_anon_mib: float | None
    rss_file_mib: float | None
    rss_shmem_mib: float | None
    threads: int | None
    fds: int | None
    db_connections: int | None
    db_side_files: int | None

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


STATUS_FIELDS = {
    "VmRSS:": "rss_mib",
    "RssAnon:": "rss_anon_mib",
    "RssFile:": "rss_file_mib",
    "RssShmem:": "rss_shmem_mib",
}


def read_status(pid: int) -> dict[str, float | int | None]:
    """RSS (MiB: total, anonymous, file-backed, shared) and thread count of `pid` from /proc/<pid>/status."""
    values: dict[str, float | int | None] = dict.fromkeys([*STATUS_FIELDS.values(), "threads"])
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                key = line.split(maxsplit=1)[0] if line.strip() else ""
                if key in STATUS_FIELDS:
                    values[STATUS_FIELDS[key]] = round(int(line.split()[1]) / 1024, 2)
                elif key == "Threads:":
                    values["threads"] = int(line.split()[1])
    except OSError:
        pass
    return values


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
    status = read_status(pid)
    rss = {key: status[key] for key in STATUS_FIELDS.values()}
    threads = status["threads"]
    threads = None if threads is None else int(threads)
    targets = fd_targets(pid)
    fds = connections = side = None
    if targets is not None:
        fds = len(targets)
        if database is not None:
            connections, side = count_database_handles(targets, database)
    return ProcessSample(**rss, threads=threads, fds=fds, db_connections=connections, db_side_files=side)
