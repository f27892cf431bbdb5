"""Where the server's anonymous memory goes, sampled from inside the server process: the soak's
task module starts `start_heap_probe()` when SOAK_HEAP_FILE is set, and a daemon thread appends one
JSON line every SAMPLE_SECONDS.

/proc tells the harness how much RSS grows, not whose it is. Three owners share the heap: SQLite
(`sqlite3_memory_used()`: page caches, prepared statements, schema), Python's objects
(`sys.getallocatedblocks()`, the blocks obmalloc hands out) and glibc malloc itself (`mallinfo2`:
bytes in use, and bytes free but kept in its arenas — fragmentation shows there).
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import sqlite3
import sys
import threading
import time
from typing import Any

HEAP_FILE_VARIABLE = "SOAK_HEAP_FILE"
SAMPLE_SECONDS = 5.0
MIB = 1024 * 1024


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks")
    ] + [("keepcost", ctypes.c_size_t)]


def sqlite_library() -> Any | None:
    """The libsqlite3 the stdlib's sqlite3 module runs on (the one loaded in this process)."""
    import sqlite3  # noqa: F401  (loads it)

    with open("/proc/self/maps") as maps:
        paths = {line.split()[-1] for line in maps if "libsqlite3" in line}
    if not paths:  # statically linked into _sqlite3: its symbols are global there
        return None
    library = ctypes.CDLL(sorted(paths)[0])
    library.sqlite3_memory_used.restype = ctypes.c_int64
    library.sqlite3_memory_highwater.restype = ctypes.c_int64
    library.sqlite3_memory_highwater.argtypes = [ctypes.c_int]
    return library


# sqlite3_db_status() counters: what one connection holds.
DB_STATUS = {"cache": 1, "schema": 2, "statements": 3}


def connection_memory(sqlite: Any) -> dict[str, float]:
    """SQLite's memory summed over the process's open sqlite3 connections (MiB: page caches,
    schemas, prepared statements) and how many there are. CPython 3.11's Connection object holds
    its `sqlite3 *` right after the object header; a diagnostic for the soak only."""
    totals = dict.fromkeys(DB_STATUS, 0)
    count = 0
    current, highest = ctypes.c_int(), ctypes.c_int()
    for obj in gc.get_objects():
        if type(obj) is not sqlite3.Connection:
            continue
        handle = ctypes.c_void_p.from_address(id(obj) + object.__basicsize__).value
        if not handle:  # closed
            continue
        count += 1
        for name, op in DB_STATUS.items():
            if (
                sqlite.sqlite3_db_status(ctypes.c_void_p(handle), op, ctypes.byref(current), ctypes.byref(highest), 0)
                == 0
            ):
                totals[name] += current.value
    return {"sqlite_connections": count, **{f"sqlite_{name}_mib": round(v / MIB, 2) for name, v in totals.items()}}


def sample(sqlite: Any | None, libc: Any | None) -> dict[str, float | int | None]:
    """One reading: SQLite's heap, Python's allocated blocks, glibc's in-use and free arena bytes."""
    row: dict[str, float | int | None] = {"t": round(time.time(), 2), "python_blocks": sys.getallocatedblocks()}
    if sqlite is not None:
        row["sqlite_mib"] = round(sqlite.sqlite3_memory_used() / MIB, 2)
        row["sqlite_highwater_mib"] = round(sqlite.sqlite3_memory_highwater(0) / MIB, 2)
        row.update(connection_memory(sqlite))
    if libc is not None:
        info = libc.mallinfo2()
        row["malloc_in_use_mib"] = round((info.uordblks + info.hblkhd) / MIB, 2)
        row["malloc_free_mib"] = round(info.fordblks / MIB, 2)
        row["malloc_arena_mib"] = round(info.arena / MIB, 2)
    return row


def start_heap_probe() -> threading.Thread | None:
    """Starts the sampling thread when SOAK_HEAP_FILE names a file (once per process)."""
    path = os.environ.get(HEAP_FILE_VARIABLE)
    if not path:
        return None
    try:
        sqlite = sqlite_library()
        libc: Any | None = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
    except (OSError, AttributeError):
        libc = None
        sqlite = None

    def run() -> None:
        with open(path, "a") as out:
            while True:
                out.write(json.dumps(sample(sqlite, libc)) + "\n")
                out.flush()
                time.sleep(SAMPLE_SECONDS)

    thread = threading.Thread(target=run, name="soak-heap-probe", daemon=True)
    thread.start()
    return thread
