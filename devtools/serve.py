"""The command line that serves the app as users run it (`python -m uvicorn server:app`), shared by
`make run`, the multi-process tests and the benchmarks. The Dockerfile's CMD is the same line."""

from __future__ import annotations

import sys

# uvicorn's h11 protocol with a deadline for each request head (servicescheduler/uvicorn_protocol.py):
# without it a client trickling a header byte at a time holds its connection for ever.
HTTP_PROTOCOL = "servicescheduler.uvicorn_protocol:HeadTimeoutH11Protocol"


def uvicorn_command(port: int | str, *options: str, host: str = "127.0.0.1") -> list[str]:
    """`python -m uvicorn server:app --host HOST --port PORT --http HTTP_PROTOCOL [options]` with
    this interpreter."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "server:app",
        "--host",
        host,
        "--port",
        str(port),
        "--http",
        HTTP_PROTOCOL,
        *options,
    ]
