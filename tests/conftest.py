"""Shared fixtures: databases (SQLite file and PostgreSQL), settings, and a live app over HTTP."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
import uvicorn

from devtools.tansu import free_port
from servicescheduler.scheduling.registry import TaskRegistry
from servicescheduler.settings import Settings, load_settings
from servicescheduler.storage.db import Database
from servicescheduler.storage.migrate import upgrade

pytest_plugins = ["tests.kafka_fixtures"]

ADMIN_TOKEN = "test-admin-token"
T = TypeVar("T")
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


# ----------------------------------------------------------------------------- PostgreSQL
@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str | None]:
    """Base URL of a PostgreSQL server: TEST_DATABASE_URL, else a throw-away local cluster.

    In CI (CI=true) a missing PostgreSQL is an error, not a skip: the README promises both.
    """
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield url
        return
    from devtools.postgres import PostgresCluster, postgres_available

    if not postgres_available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed but CI must test it (scripts/ensure-postgres.sh)")
        yield None
        return
    cluster = PostgresCluster()
    cluster.start()
    try:
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database per test: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    server = request.getfixturevalue("postgres_server_url")
    if server is None:
        pytest.skip("PostgreSQL not available (install Debian's postgresql or set TEST_DATABASE_URL)")
    from devtools.postgres import create_database, drop_database

    name = f"t_{uuid.uuid4().hex[:12]}"
    url = create_database(server, name)
    try:
        yield url
    finally:
        drop_database(server, name)


@pytest.fixture
def cluster_database_url(postgres_server_url: str | None) -> Iterator[str]:
    """A fresh PostgreSQL database for a test with several server processes (skips without one)."""
    if postgres_server_url is None:
        pytest.skip("PostgreSQL not available (install Debian's postgresql or set TEST_DATABASE_URL)")
    from devtools.postgres import create_database, drop_database

    name = f"c_{uuid.uuid4().hex[:12]}"
    url = create_database(postgres_server_url, name)
    try:
        yield url
    finally:
        drop_database(postgres_server_url, name)


@pytest.fixture
def servers() -> Iterator[list]:
    """Server processes (devtools/replicas.py) started by the test; all stopped afterwards."""
    started: list = []
    yield started
    for server in started:
        server.stop()


# ----------------------------------------------------------------------------- settings and storage
@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Builds test Settings: no Kafka unless asked, a known admin token, files under tmp_path."""

    def build(**overrides: object) -> Settings:
        values: dict[str, object] = dict(
            database_url=f"sqlite:///{tmp_path / 'test.db'}",
            admin_token=ADMIN_TOKEN,
            admin_token_file=tmp_path / "admin_token",
            log_format="json",
            kafka_enabled=False,
            worker_threads=4,
            shutdown_grace_seconds=5,
        )
        values.update(overrides)
        return load_settings({}, **values)

    return build


@pytest.fixture
def migrated(make_settings: Callable[..., Settings]) -> Iterator[Callable[[str], Database]]:
    """Returns a function that opens and migrates the database at a URL (disposed after the test)."""
    opened: list[Database] = []

    def open_database(url: str) -> Database:
        database = Database(make_settings(database_url=url))
        upgrade(database.engine)
        opened.append(database)
        return database

    yield open_database
    for database in opened:
        database.dispose()


# ----------------------------------------------------------------------------- live app over HTTP
class LiveApp:
    """An app served by uvicorn on a loopback port, with an httpx client for it: the reference
    service's (`LiveApp(settings, registry)`) or any host app (`LiveApp.serving(app)`)."""

    def __init__(self, settings: Settings | None, registry: TaskRegistry | None, app=None) -> None:
        from server import create_app

        self.app = app if app is not None else create_app(settings, registry)
        self.service = getattr(self.app.state, "servicescheduler", None)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_config=None, lifespan="on", access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="live-app", daemon=True)
        self.client = httpx.Client(base_url=self.base_url, timeout=10)

    @classmethod
    def serving(cls, app) -> LiveApp:
        """Serves a host app of the test's own."""
        return cls(None, None, app)

    def start(self) -> LiveApp:
        """Starts uvicorn and waits until the lifespan completed."""
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("live app did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stops uvicorn (runs the lifespan shutdown) and waits for its thread."""
        self.client.close()
        self.server.should_exit = True
        self.thread.join(timeout=30)

    @property
    def application(self):
        """The running parts of the app's ServiceScheduler (after start)."""
        return self.service.application

    @property
    def scheduler(self):
        """The running Scheduler (the engine)."""
        return self.application.scheduler


@pytest.fixture
def live_app() -> Iterator[Callable[..., LiveApp]]:
    """Starts real apps (`live_app(settings, registry)`); all are stopped after the test."""
    started: list[LiveApp] = []

    def start(settings: Settings, registry: TaskRegistry | None = None) -> LiveApp:
        app = LiveApp(settings, registry).start()
        started.append(app)
        return app

    yield start
    for app in reversed(started):
        app.stop()


@pytest.fixture
def host_app() -> Iterator[Callable[..., LiveApp]]:
    """Serves host apps of the test's own (`host_app(app)`); all are stopped after the test."""
    started: list[LiveApp] = []

    def start(app) -> LiveApp:
        served = LiveApp.serving(app).start()
        started.append(served)
        return served

    yield start
    for served in reversed(started):
        served.stop()


def wait_until(predicate: Callable[[], T | None], timeout: float = 5.0, interval: float = 0.01) -> T:
    """Polls `predicate` until it returns something truthy; fails the test on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s: {predicate}")


# ----------------------------------------------------------------------------- scheduler
class FakeClock:
    """A settable clock (epoch seconds) for tick()-driven tests."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Moves time forward; returns the new now."""
        self.now += seconds
        return self.now


@pytest.fixture
def make_scheduler(make_settings: Callable[..., Settings]):
    """Builds and starts ServiceSchedulers on a migrated database; stops them after the test.

    `make_scheduler(registry, clock=None, run_loop=False, **settings)`. Without the loop, one
    tick() has already run (the start-up runs are dispatched, possibly still running).
    """
    from servicescheduler.scheduler import Scheduler

    built: list[tuple[Scheduler, Database]] = []

    def build(
        registry: TaskRegistry, *, clock: Callable[[], float] | None = None, run_loop: bool = False, **overrides: object
    ) -> Scheduler:
        settings = make_settings(**overrides)
        database = Database(settings)
        upgrade(database.engine)
        scheduler = Scheduler(settings, database, registry, clock=clock or time.time)
        scheduler.start(run_loop=run_loop)
        if not run_loop:
            scheduler.tick()  # dispatches the start-up runs, as the loop's first wake-up would
        built.append((scheduler, database))
        return scheduler

    yield build
    for scheduler, database in built:
        scheduler.stop(timeout=5)
        database.dispose()


# ----------------------------------------------------------------------------- test tiers
# A test's tiers follow from the fixtures it uses, so `make test-fast` (which deselects
# postgres, kafka, browser and slow) can never reach PostgreSQL, the broker or chromium because
# someone forgot a decorator. tests/test_tiers.py checks every collected test against these rules.
POSTGRES_FIXTURES = frozenset({"postgres_server_url", "cluster_database_url"})
KAFKA_FIXTURES = frozenset({"kafka", "kafka_topic", "kafka_settings", "kafka_producer"})  # tests/kafka_fixtures.py
BROWSER_FIXTURES = frozenset({"browser"})  # Playwright's chromium (tests/infra/browser.py)
SLOW_FIXTURES = frozenset({"servers"})  # real uvicorn processes, each several seconds to start


def required_tiers(item: pytest.Item) -> set[str]:
    """The tier markers `item` must carry, from the fixtures it uses (transitively) and its parameters."""
    fixtures = set(getattr(item, "fixturenames", ()))
    callspec = getattr(item, "callspec", None)
    params = callspec.params if callspec is not None else {}
    tiers = set()
    # database_url asks for the server at run time (getfixturevalue): only its parameter shows it.
    if fixtures & POSTGRES_FIXTURES or params.get("database_url") == "postgresql":
        tiers.add("postgres")
    if fixtures & KAFKA_FIXTURES:
        tiers.add("kafka")
    if fixtures & BROWSER_FIXTURES:
        tiers.add("browser")
    if fixtures & SLOW_FIXTURES:
        tiers.add("slow")
    return tiers


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Adds the tier markers each test's fixtures imply (before `-m` deselects)."""
    for item in items:
        present = {marker.name for marker in item.iter_markers()}
        for tier in sorted(required_tiers(item) - present):
            item.add_marker(getattr(pytest.mark, tier))
