"""HTTP edges against the real app over loopback: body limit, 5xx as JSON, no internals or
secrets in error texts, the token file's permissions."""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from servicescheduler.scheduling.registry import TaskContext, TaskRegistry
from servicescheduler.scheduling.triggers import every
from servicescheduler.settings import SettingsError, load_settings
from tests.conftest import AUTH, wait_until

REPO_ROOT = Path(__file__).resolve().parents[1]
SECRET = "s3cret-value-7f3a"


def _registry() -> TaskRegistry:
    registry = TaskRegistry()
    registry.register("job", lambda: None, trigger=every(1).hours, enabled=False)
    return registry


def _raw_request(port: int, head: str, body_chunks: list[bytes], read_timeout: float = 10) -> tuple[int, dict, int]:
    """Sends a request over a raw socket, chunk by chunk; returns (status, JSON body, bytes sent).

    Stops sending as soon as the server answers, so the caller learns how much of the body the
    server had to take before it replied.
    """
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout) as sock:
        sock.sendall(head.encode())
        sock.settimeout(2)
        answer = b""
        for chunk in body_chunks:
            if select.select([sock], [], [], 0)[0]:
                break  # the server answered (or closed): stop sending
            try:
                sock.sendall(chunk)
            except OSError:  # the server stopped reading and closed, or stopped reading for 2 s
                break
            sent += len(chunk)
        sock.settimeout(read_timeout)
        while b"\r\n\r\n" not in answer:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
        head_bytes, _, rest = answer.partition(b"\r\n\r\n")
        headers = dict(line.split(": ", 1) for line in head_bytes.decode().split("\r\n")[1:])
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            data = sock.recv(65536)
            if not data:
                break
            rest += data
    status = int(head_bytes.split(b" ")[1])
    return status, json.loads(rest[:length] or b"null"), sent


# ----------------------------------------------------------------------------- body limit
def test_oversized_body_with_content_length_is_413_before_it_is_read(live_app, make_settings) -> None:
    app = live_app(make_settings(max_request_bytes=1024), _registry())
    big = json.dumps({"interval_seconds": 60, "pad": "x" * 5000})
    response = app.client.patch("/tasks/job", content=big, headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 413
    assert "1024" in response.json()["detail"] and "MAX_REQUEST_BYTES" in response.json()["detail"]
    small = app.client.patch("/tasks/job", json={"interval_seconds": 60}, headers=AUTH)
    assert small.status_code == 200


def test_chunked_body_is_cut_off_while_streaming(live_app, make_settings) -> None:
    """No Content-Length: the limit counts bytes as they arrive and answers 413 long before the
    client has sent its 64 MiB."""
    app = live_app(make_settings(max_request_bytes=64 * 1024), _registry())
    head = (
        f"PATCH /tasks/job HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {AUTH['Authorization']}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"x" * 65536
    framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    status, body, sent = _raw_request(app.port, head, [framed] * 1024)
    assert status == 413 and "MAX_REQUEST_BYTES" in body["detail"]
    assert sent < 16 * 1024 * 1024


def test_tokenless_request_gets_401_without_its_body_being_read(live_app, make_settings) -> None:
    """Auth comes first: a client without the token cannot make the server read (or parse) a body,
    not even one within the limit, nor a malformed one."""
    app = live_app(make_settings(max_request_bytes=64 * 1024), _registry())
    for body in (b"{not json", json.dumps({"interval_seconds": 60}).encode()):
        response = app.client.patch("/tasks/job", content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 401, body
    head = (
        "PATCH /tasks/job HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    framed = f"{65536:x}\r\n".encode() + b"x" * 65536 + b"\r\n"
    status, answer, sent = _raw_request(app.port, head, [framed] * 1024)
    assert status == 401 and "bearer" in answer["detail"]
    assert sent < 16 * 1024 * 1024


# ----------------------------------------------------------------------------- 5xx
def test_an_unhandled_error_is_a_json_500_that_leaks_nothing(live_app, make_settings, capsys) -> None:
    app = live_app(make_settings(), _registry())

    def broken() -> list[dict]:
        raise RuntimeError(f"lost postgresql://app:{SECRET}@db.internal/app")

    app.scheduler.statuses = broken
    response = app.client.get("/tasks")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    detail = response.json()["detail"]
    assert isinstance(detail, str) and SECRET not in detail and "RuntimeError" not in detail
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    errors = [line for line in lines if line.get("event") == "http_unhandled_error"]
    assert len(errors) == 1
    assert errors[0]["path"] == "/tasks" and errors[0]["error_id"] in detail
    assert "RuntimeError" in errors[0]["traceback"] and "db.internal" in errors[0]["error"]
    assert SECRET not in json.dumps(errors[0])


# ----------------------------------------------------------------------------- error texts
def _leaky_registry(database_holder: dict) -> TaskRegistry:
    """A task whose SQL fails with event data in its parameters (a duplicate event id)."""

    def leak(ctx: TaskContext) -> None:
        with ctx.database.session() as session:
            for _ in range(2):
                session.execute(
                    text(
                        'INSERT INTO ss_events (id, type, occurred_at, received_at, topic, partition, "offset") '
                        "VALUES (:id, 't', :now, :now, 'events', 0, 0)"
                    ),
                    {"id": SECRET, "now": "2026-01-01 00:00:00"},
                )

    registry = TaskRegistry()
    registry.register("leaky", leak, trigger=every(1).hours, enabled=False)
    return registry


def test_error_texts_on_public_routes_carry_no_sql_parameters(live_app, make_settings, database_url) -> None:
    app = live_app(make_settings(database_url=database_url), _leaky_registry({}))
    assert app.client.post("/tasks/leaky/run", headers=AUTH).status_code == 202
    # Until the run has ended: its start (`running`) is stored first, its end when it ends.
    runs = wait_until(lambda: [r for r in app.client.get("/tasks/leaky/runs").json() if r["outcome"] != "running"])
    error = runs[0]["error"]
    assert runs[0]["outcome"] == "error" and "IntegrityError" in error
    assert SECRET not in error and len(error) <= 500
    assert SECRET not in json.dumps(app.client.get("/tasks/leaky").json())
    assert SECRET not in json.dumps(app.client.get("/tasks").json())


def test_settings_errors_mask_passwords_in_urls() -> None:
    cases = {
        "DATABASE_URL": "mysql://admin:hunter2@db.example.com/app",
        "NOTIFY_WEBHOOK_URL": "ftp://hook:hunter2@hooks.example.com/x",
    }
    for variable, value in cases.items():
        with pytest.raises(SettingsError) as caught:
            load_settings({variable: value})
        message = str(caught.value)
        assert variable in message and "hunter2" not in message and "***" in message
    with pytest.raises(SettingsError) as caught:  # unparsable (bad port) but with a password
        load_settings({"DATABASE_URL": "postgresql://admin:hunter2@db:notaport/app"})
    assert "DATABASE_URL" in str(caught.value) and "hunter2" not in str(caught.value)


# ----------------------------------------------------------------------------- token file
def _start_server_process(tmp_path: Path, token_file: Path) -> subprocess.CompletedProcess:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}",
        "ADMIN_TOKEN_FILE": str(token_file),
        "KAFKA_ENABLED": "false",
        "LOG_FORMAT": "json",
    }
    return subprocess.run(
        [sys.executable, "-c", "import server; server.app"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.slow  # a subprocess or a live server for seconds: out of the fast tier
def test_a_group_or_world_readable_token_file_stops_start_up(tmp_path) -> None:
    token_file = tmp_path / "admin_token"
    token_file.write_text("an-old-token-value\n")
    token_file.chmod(0o644)
    result = _start_server_process(tmp_path, token_file)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "ADMIN_TOKEN_FILE" in lines[0] and "0644" in lines[0] and "an-old-token-value" not in lines[0]


@pytest.mark.slow  # a subprocess or a live server for seconds: out of the fast tier
def test_a_symlinked_token_file_is_refused(tmp_path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("x\n")
    target.chmod(0o600)
    token_file = tmp_path / "admin_token"
    token_file.symlink_to(target)
    result = _start_server_process(tmp_path, token_file)
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1 and "symlink" in result.stderr


def test_the_token_file_is_created_exclusively_and_owner_only(make_settings, tmp_path) -> None:
    from servicescheduler.storage.admin_token import load_admin_token

    token_file = tmp_path / "fresh" / "admin_token"
    token = load_admin_token(make_settings(admin_token=None, admin_token_file=token_file))
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert load_admin_token(make_settings(admin_token=None, admin_token_file=token_file)) == token


# ----------------------------------------------------------------------------- container
def test_the_docker_build_context_excludes_secrets_and_data() -> None:
    patterns = {
        line.strip().rstrip("/")
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".env", "**/.env", "data"} <= patterns
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    for line in dockerfile.splitlines():
        words = line.split()
        if words and words[0] in ("COPY", "ADD"):
            assert not any(".env" in w or "admin_token" in w for w in words[1:]), line
        if words and words[0] == "ENV":
            assert "TOKEN" not in line and "PASSWORD" not in line, line


def test_public_error_drops_parameters_row_data_and_url_passwords() -> None:
    from servicescheduler.support.redact import public_error, scrub_errors

    text = (
        "IntegrityError: (psycopg.errors.UniqueViolation) duplicate key value violates unique constraint\n"
        f"DETAIL:  Key (id)=({SECRET}) already exists.\n"
        "[SQL: INSERT INTO events (id) VALUES (%(id)s)]\n"
        f"[parameters: {{'id': '{SECRET}'}}]\n"
        f"while talking to postgresql://app:{SECRET}@db/app"
    )
    cleaned = public_error(text) or ""
    assert SECRET not in cleaned
    assert "UniqueViolation" in cleaned and "[SQL: INSERT INTO events" in cleaned and "app:***@db" in cleaned
    assert len(public_error("x" * 10_000) or "") == 500
    pydantic = (
        "1 validation error for Event\nid\n  String should have at most 128 characters "
        f"[type=string_too_long, input_value='{SECRET}', input_type=str]"
    )
    shown = public_error(pydantic) or ""
    assert SECRET not in shown and "string_too_long" in shown
    status: dict[str, Any] = {"state": "crash_looping", "last_error": text, "partitions": [{"reason": text, "lag": 3}]}
    scrubbed = scrub_errors(status)
    assert SECRET not in json.dumps(scrubbed) and scrubbed["partitions"][0]["lag"] == 3


def test_405_lists_every_method_the_path_allows(live_app, make_settings) -> None:
    app = live_app(make_settings(), _registry())
    response = app.client.request("OPTIONS", "/tasks/job")
    assert response.status_code == 405
    assert {m.strip() for m in response.headers["allow"].split(",")} == {"GET", "PATCH", "DELETE"}
    assert "PATCH" in response.json()["detail"]


@pytest.mark.postgres  # starts its own server to stop it
def test_a_database_outage_is_a_json_503_not_a_500(live_app, make_settings) -> None:
    from devtools.postgres import PostgresCluster, postgres_available, stop_postgres

    if not postgres_available():
        pytest.skip("PostgreSQL not installed")
    cluster = PostgresCluster().start()
    try:
        app = live_app(make_settings(database_url=cluster.url, shutdown_grace_seconds=1), _registry())
        assert app.client.get("/tasks/job/runs").status_code == 200
        stop_postgres(cluster)
        response = app.client.get("/tasks/job/runs")
        assert response.status_code == 503 and response.headers["retry-after"]
        assert "database" in response.json()["detail"] and cluster.url not in response.json()["detail"]
        app.stop()
    finally:
        cluster.stop()
