"""Slow clients against the real server command line (`devtools/serve.py`, as `make run` and the
Dockerfile serve it): request heads trickled a byte at a time are cut off within the head deadline,
and a well-behaved client is served meanwhile. Real sockets on loopback."""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from devtools.serve import HTTP_PROTOCOL, uvicorn_command
from devtools.tansu import free_port
from servicescheduler.uvicorn_protocol import REQUEST_HEAD_TIMEOUT
from tests.conftest import ADMIN_TOKEN, wait_until

ROOT = Path(__file__).resolve().parent.parent
SLOW_CONNECTIONS = 500
# A loaded 2-core machine delays the server's timer and our reads; the bound under test is
# REQUEST_HEAD_TIMEOUT, this is only how late we still accept its effect.
SLACK_SECONDS = 8.0
TRICKLE_INTERVAL = 1.0

pytestmark = [pytest.mark.slow, pytest.mark.realtime]


@dataclass
class SlowClient:
    sock: socket.socket
    received: bytearray = field(default_factory=bytearray)
    closed_after: float | None = None


@dataclass
class Server:
    url: str
    log: Path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp_path = tmp_path_factory.mktemp("slow-clients")
    port = free_port()
    environ = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "KAFKA_ENABLED": "false",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}",
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "LOG_LEVEL": "WARNING",
        "BUILTIN_TASKS": "",
    }
    log_path = tmp_path / "server.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        uvicorn_command(port, "--no-access-log"), cwd=tmp_path, env=environ, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert process.poll() is None, log_path.read_text()[-3000:]
        try:
            return httpx.get(f"{url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(healthy, timeout=30, interval=0.1)
        yield Server(url, log_path)
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    sock.setblocking(False)
    return sock


def _read_response(sock: socket.socket) -> bytes:
    """One whole response with a content-length from a blocking socket (its head may come apart
    from its body)."""
    data = b""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        head, _, body = data.partition(b"\r\n\r\n")
        lengths = [int(line[15:]) for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")]
        length = lengths[0] if lengths else -1
        if 0 <= length <= len(body):
            return data
        data += sock.recv(4096)
    raise AssertionError(f"no whole response within 5 s: {data!r}")


def _trickle(clients: list[SlowClient], started: float, until: float) -> None:
    """Sends one more header byte on every open connection each TRICKLE_INTERVAL and records when
    the server closes each one; returns when all are closed or at `until` (monotonic)."""
    selector = selectors.DefaultSelector()
    for client in clients:
        selector.register(client.sock, selectors.EVENT_READ, client)
    next_byte = time.monotonic()
    try:
        while selector.get_map() and time.monotonic() < until:
            if time.monotonic() >= next_byte:
                next_byte += TRICKLE_INTERVAL
                for key in list(selector.get_map().values()):
                    # A send to a connection the server closed fails: the read below records it.
                    with contextlib.suppress(OSError):
                        key.data.sock.send(b"a")
            for key, _ in selector.select(timeout=0.1):
                ready: SlowClient = key.data
                try:
                    chunk = ready.sock.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    chunk = b""
                if chunk:
                    ready.received += chunk
                    continue
                ready.closed_after = time.monotonic() - started
                selector.unregister(ready.sock)
    finally:
        selector.close()
        for client in clients:
            client.sock.close()


def test_trickled_request_heads_are_closed_within_the_deadline_and_others_are_served(server: Server) -> None:
    server_url = server.url
    started = time.monotonic()
    clients = []
    for _ in range(SLOW_CONNECTIONS):
        client = SlowClient(_connect(server_url))
        client.sock.send(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        clients.append(client)

    # While 500 heads are pending, a normal request is answered at once.
    response = httpx.get(f"{server_url}/health", timeout=5)
    assert response.status_code == 200

    _trickle(clients, started, until=started + REQUEST_HEAD_TIMEOUT + SLACK_SECONDS)

    still_open = [client for client in clients if client.closed_after is None]
    assert not still_open, f"{len(still_open)} of {SLOW_CONNECTIONS} slow connections still open"
    latest = max(client.closed_after or 0.0 for client in clients)
    assert latest <= REQUEST_HEAD_TIMEOUT + SLACK_SECONDS
    # Not cut off early either: the deadline is the head's whole allowance.
    assert min(client.closed_after or 0.0 for client in clients) >= REQUEST_HEAD_TIMEOUT - 0.5
    assert all(client.received.startswith(b"HTTP/1.1 408 ") for client in clients)
    assert httpx.get(f"{server_url}/health", timeout=5).status_code == 200
    # One structured line per connection cut off, naming the client and what it had sent.
    lines = [json.loads(line) for line in server.log.read_text().splitlines() if "request_head_timeout" in line]
    assert len(lines) == SLOW_CONNECTIONS
    assert lines[0]["level"] == "warning" and lines[0]["client"].startswith("127.0.0.1:")
    assert lines[0]["timeout_seconds"] == REQUEST_HEAD_TIMEOUT and lines[0]["received_bytes"] > 40


def test_the_deadline_is_rearmed_for_the_next_request_on_a_keep_alive_connection(server: Server) -> None:
    server_url = server.url
    sock = _connect(server_url)
    sock.settimeout(5)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    first = _read_response(sock)
    assert first.startswith(b"HTTP/1.1 200 "), first
    sock.setblocking(False)

    # The next head starts before uvicorn's keep-alive timeout and never ends.
    started = time.monotonic()
    sock.send(b"GET /health HTTP/1.1\r\nX-Slow: ")
    client = SlowClient(sock)
    _trickle([client], started, until=started + REQUEST_HEAD_TIMEOUT + SLACK_SECONDS)

    assert client.closed_after is not None, "the second, trickled head kept the connection open"
    assert client.received.startswith(b"HTTP/1.1 408 "), bytes(client.received)


def test_the_image_and_the_dev_command_line_serve_the_same_protocol() -> None:
    """The Dockerfile's CMD is the other place the service is served from: it must name the protocol too."""
    cmd = next(line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("CMD "))
    words = json.loads(cmd.removeprefix("CMD "))
    assert words[words.index("--http") + 1] == HTTP_PROTOCOL
    assert uvicorn_command(8000)[uvicorn_command(8000).index("--http") + 1] == HTTP_PROTOCOL
