"""The command line that serves the app as users run it (`python -m uvicorn server:app`), shared by
`make run`, the multi-process tests and the benchmarks."""

from __future__ import annotations

import sys


def uvicorn_command(port: int | str, *options: str, host: str = "127.0.0.1") -> list[str]:
    """`python -m uvicorn server:app --host HOST --port PORT [options]` with this interpreter."""
    return [sys.executable, "-m", "uvicorn", "server:app", "--host", host, "--port", str(port), *options]
