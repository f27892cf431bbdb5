"""ServiceScheduler: periodic tasks and a durable Kafka consumer, embedded in your FastAPI app.

    from fastapi import Depends, FastAPI
    from servicescheduler import ServiceScheduler, TaskContext, every

    scheduler = ServiceScheduler(database_url="sqlite:///./data/app.db")

    @scheduler.task("sync-prices", trigger=every(30).seconds)
    def sync_prices(ctx: TaskContext) -> None: ...

    app = FastAPI(lifespan=scheduler.lifespan)      # or `async with scheduler.running():`
    app.include_router(scheduler.router, prefix="/ops", dependencies=[Depends(my_auth)])
    app.mount("/ops/ui", scheduler.dashboard)

Declaring one is free: it reads no environment variable (unless built by `from_env()`), opens no
database and creates no file. `start()` (what the lifespan calls) builds the running parts
(service.py's Application) from the settings and the declared tasks, migrates the database
(MIGRATE_ON_START), and starts the scheduler loop, the consumer and the cluster sync; `stop()`
ends them within the shutdown grace. Each instance has its own tasks, handlers, metrics and
routes: two instances in one process never see each other's.
"""

from __future__ import annotations

import gc
import importlib
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, FastAPI
from prometheus_client import CollectorRegistry

from servicescheduler.api.binding import bind_routes
from servicescheduler.api.deps import NotRunning
from servicescheduler.api.routers import ROUTERS
from servicescheduler.builtin import builtin_tasks
from servicescheduler.consumers.decoding.contracts import (
    Decoder,
    Format,
    TopicContract,
    TopicDefinitionError,
    TopicHandler,
    TopicRegistry,
    check_against_envelope_topics,
)
from servicescheduler.consumers.decoding.contracts import topics as module_topics
from servicescheduler.consumers.storing.handlers import Handler, HandlerRegistry
from servicescheduler.consumers.storing.handlers import handlers as module_handlers
from servicescheduler.dashboard.app import build_dashboard
from servicescheduler.errors import StartupError
from servicescheduler.logs import get_logger
from servicescheduler.metrics import Metrics
from servicescheduler.scheduling.registry import DEFAULT_RETRY_BACKOFF_SECONDS, TaskRegistry
from servicescheduler.scheduling.registry import tasks as module_tasks
from servicescheduler.scheduling.triggers import Trigger
from servicescheduler.service import Application
from servicescheduler.settings import Settings, load_settings, settings_from
from servicescheduler.storage.admin_token import load_admin_token
from servicescheduler.storage.db import Database
from servicescheduler.storage.migrate import check_current, upgrade

log = get_logger(__name__)


class ServiceScheduler:
    """One embeddable scheduler: tasks, a Kafka consumer, an HTTP router and a dashboard."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        auth: Callable[..., Any] | None = None,
        metrics_registry: CollectorRegistry | None = None,
        handlers: HandlerRegistry | None = None,
        **options: Any,
    ) -> None:
        """`settings`, or the settings as keywords (`database_url=...`, any field of Settings).

        `auth`: a FastAPI dependency returning the actor's name; mutations need it (instead of the
        bearer token) and the audit log records what it returns. `metrics_registry`: register
        the metrics there (default: the instance's own, served at the router's /metrics).
        `handlers`: the event handler registry (default: the instance's own).
        """
        if settings is not None and options:
            raise TypeError(f"pass settings= or settings as keywords, not both (got {', '.join(sorted(options))})")
        self.settings = settings if settings is not None else settings_from(**options)
        self.tasks = TaskRegistry()
        self.handlers = handlers if handlers is not None else HandlerRegistry()
        self.topics = TopicRegistry()
        self.auth = auth
        self.metrics_registry = metrics_registry
        self._application: Application | None = None
        self._admin_token: str | None = None
        self._registered: list[Any] = []  # collectors this instance added to a host registry
        self._lock = threading.Lock()
        self.router: APIRouter = bind_routes(self, ROUTERS)
        self.dashboard: FastAPI = build_dashboard(self)

    @classmethod
    def from_env(cls, **kwargs: Any) -> ServiceScheduler:
        """Settings from the environment and `.env` (the reference service's way)."""
        return cls(load_settings(), **kwargs)

    # ------------------------------------------------------------------ declarations
    def task(self, name: str, **options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator declaring a task of this instance (options as `TaskRegistry.task`)."""
        return self.tasks.task(name, **options)

    def function(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator declaring a function operators may make tasks of at runtime (POST /tasks,
        `add_task`): `def f(ctx, *, region: str) -> None`, keyword arguments besides ctx."""
        return self.tasks.function(name)

    def add_task(
        self,
        name: str,
        function: str,
        trigger: Trigger | dict[str, Any],
        *,
        kwargs: dict[str, Any] | None = None,
        enabled: bool = True,
        description: str = "",
        retries: int = 0,
        retry_backoff: float = DEFAULT_RETRY_BACKOFF_SECONDS,
        checkin_url: str | None = None,
        actor: str = "python",
    ) -> dict[str, Any]:
        """Creates a runtime task from a declared function, on the running scheduler, the way
        POST /tasks does (persisted, audited, on every replica within 1 s). `trigger`: `cron(...)`,
        an interval `every(N).seconds` trigger or its JSON form. Returns the task's JSON; raises
        InvalidTask (bad trigger, kwargs, function) or TaskConflict (name taken)."""
        return self.application.scheduler.add_task(
            name,
            function,
            trigger,
            kwargs=kwargs or {},
            enabled=enabled,
            description=description,
            retries=retries,
            retry_backoff=retry_backoff,
            checkin_url=checkin_url,
            actor=actor,
        ).as_dict()

    def remove_task(self, name: str, *, actor: str = "python") -> None:
        """Deletes a runtime task (its run history stays); TaskConflict for a declared task."""
        self.application.scheduler.remove_task(name, actor=actor)

    def handler(self, event_type: str, *, store_event: bool = True) -> Callable[[Handler], Handler]:
        """Decorator declaring this instance's handler of a Kafka event type."""
        return self.handlers.register(event_type, store_event=store_event)

    def topic(
        self,
        topic: str,
        *,
        model: type[Any] | None = None,
        key: Callable[[Any], object] | None = None,
        occurred_at: Callable[[Any], datetime | None] | None = None,
        type: str | None = None,  # noqa: A002 - the contract's own word
        store_event: bool = True,
        decoder: Decoder | None = None,
        format: Format = "json",  # noqa: A002
    ) -> Callable[[TopicHandler], TopicHandler]:
        """Decorator declaring a topic this instance consumes, with its contract (TopicContract):
        the decorated `handler(batch, payload, meta)` gets each validated payload."""
        return self.topics.topic(
            topic,
            model=model,
            key=key,
            occurred_at=occurred_at,
            type=type,
            store_event=store_event,
            decoder=decoder,
            format=format,
        )

    def consume(self, contract: TopicContract) -> None:
        """Declares a topic by its contract (e.g. one without a handler: the payload is stored)."""
        self.topics.add(contract)

    def include(self, registry: TaskRegistry) -> None:
        """Adds every task of `registry` (e.g. a module's own registry) to this instance."""
        for spec in registry:
            self.tasks.add(spec)
        for name, func in registry.functions.items():
            self.tasks.add_function(name, func)

    def declared_tasks(self) -> TaskRegistry:
        """Every task this instance serves: the built-ins BUILTIN_TASKS names, the tasks of the
        TASK_MODULES modules (imported now), its own. Raises StartupError naming a bad module or
        built-in, TaskDefinitionError naming a task declared twice."""
        return build_registry(self.settings, self.tasks)

    def check(self) -> None:
        """Fails now, with one line, on what would stop start(): the declared tasks (imports
        TASK_MODULES), without `auth` the admin token file (generated at first use, 0600), and
        with MIGRATE_ON_START=false a database that is not migrated. A program calls it before
        it serves (the reference service does); start() checks the same."""
        self.declared_tasks()
        self.declared_topics()
        self._token()
        if not self.settings.migrate_on_start:
            database = Database(self.settings)
            try:
                check_current(database.engine)
            finally:
                database.dispose()

    def _token(self) -> str:
        """The bearer token of mutations (ADMIN_TOKEN or its file), loaded once; none with `auth`."""
        if self.auth is not None:
            return ""
        if self._admin_token is None:
            self._admin_token = load_admin_token(self.settings)
        return self._admin_token

    # ------------------------------------------------------------------ life
    @property
    def application(self) -> Application:
        """The running parts (scheduler engine, consumer, database); NotRunning when stopped."""
        application = self._application
        if application is None:
            raise NotRunning(
                "the ServiceScheduler is not running: start it in the app's lifespan "
                "(FastAPI(lifespan=scheduler.lifespan) or `async with scheduler.running():`)"
            )
        return application

    @property
    def is_running(self) -> bool:
        """True between a successful start() and stop()."""
        return self._application is not None

    def start(self) -> None:
        """Builds the running parts and starts them (blocking: migrations, state, threads)."""
        with self._lock:
            if self._application is not None:
                raise RuntimeError("this ServiceScheduler is already running")
            before = _collectors(self.metrics_registry)
            application = Application(
                self.settings,
                self.declared_tasks(),
                handlers=self.declared_handlers(),
                topics=self.declared_topics(),
                metrics=Metrics(self.metrics_registry),
                admin_token=self._token(),
            )
            self._registered = [c for c in _collectors(self.metrics_registry) if c not in before]
            if self.settings.gc_freeze_on_start:
                _freeze_start_up_objects()  # before any thread of ours runs: the pause is start-up's
            try:
                application.start()
            except BaseException:
                application.stop()
                self._unregister_metrics()
                raise
            self._application = application

    def stop(self, timeout: float | None = None) -> list[str]:
        """Stops within the shutdown grace (or `timeout`); returns tasks that did not finish."""
        with self._lock:
            application, self._application = self._application, None
            if application is None:
                return []
            try:
                return application.stop(timeout)
            finally:
                self._unregister_metrics()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[ServiceScheduler]:
        """`async with scheduler.running():` inside your own lifespan (start and stop off the loop)."""
        await anyio.to_thread.run_sync(self.start)
        try:
            yield self
        finally:
            await anyio.to_thread.run_sync(self.stop)

    def lifespan(self, app: object) -> AbstractAsyncContextManager[None]:
        """`FastAPI(lifespan=scheduler.lifespan)`."""
        return self._lifespan()

    @asynccontextmanager
    async def _lifespan(self) -> AsyncIterator[None]:
        async with self.running():
            yield

    def migrate(self) -> None:
        """Applies the database migrations (what start() does unless MIGRATE_ON_START is false)."""
        database = Database(self.settings)
        try:
            upgrade(database.engine)
        finally:
            database.dispose()

    # ------------------------------------------------------------------ internals
    def declared_handlers(self) -> HandlerRegistry:
        """This instance's handlers, plus the module-level ones when TASK_MODULES names modules."""
        if not self.settings.task_module_names or self.handlers is module_handlers:
            return self.handlers
        merged = HandlerRegistry(self.handlers.default)
        try:
            merged.update(self.handlers)
            merged.update(module_handlers)
        except ValueError as exc:
            raise StartupError(f"TASK_MODULES: {exc}") from None
        return merged

    def declared_topics(self) -> TopicRegistry:
        """This instance's topic contracts, plus the module-level ones when TASK_MODULES names
        modules (call after declared_tasks(), which imports them). StartupError when a topic has
        two contracts or is also in KAFKA_TOPICS."""
        merged = TopicRegistry()
        try:
            merged.update(self.topics)
            if self.settings.task_module_names:
                merged.update(module_topics)
            check_against_envelope_topics(merged, self.settings.topics)
        except TopicDefinitionError as exc:
            raise StartupError(f"topic contracts: {exc}") from None
        return merged

    def _unregister_metrics(self) -> None:
        if self.metrics_registry is not None:
            for collector in self._registered:
                self.metrics_registry.unregister(collector)
        self._registered = []


def _collectors(registry: CollectorRegistry | None) -> list[Any]:
    # prometheus_client keeps no public list of a registry's collectors; this mapping has been
    # its storage for years. Only a host's registry is read (an instance's own is dropped whole).
    return [] if registry is None else list(registry._collector_to_names)


def build_registry(settings: Settings, own: TaskRegistry) -> TaskRegistry:
    """The tasks an instance runs: the built-ins BUILTIN_TASKS names, then every task declared on
    the module-level registry by the modules of TASK_MODULES (imported here, in order), then its
    own. Raises StartupError naming a module that fails to import or a built-in that does not
    exist; TaskDefinitionError naming a task declared twice."""
    builtin = {spec.name for spec in builtin_tasks}
    wanted = builtin if settings.builtin_tasks == "all" else set(settings.builtin_task_names)
    unknown = sorted(wanted - builtin)
    if unknown:
        raise StartupError(
            f"BUILTIN_TASKS names no built-in task {', '.join(unknown)} (built-in tasks: {', '.join(sorted(builtin))})"
        )
    registry = TaskRegistry()
    for spec in builtin_tasks:
        if spec.name in wanted:
            registry.add(spec)
    for module in settings.task_module_names:
        try:
            importlib.import_module(module)
        except Exception as exc:  # any failure, SyntaxError included, is the user's module's
            raise StartupError(f"TASK_MODULES: cannot import {module!r}: {type(exc).__name__}: {exc}") from None
    if settings.task_module_names:
        for spec in module_tasks:
            registry.add(spec)
        for name, func in module_tasks.functions.items():
            registry.add_function(name, func)
    for spec in own:
        registry.add(spec)
    for name, func in own.functions.items():
        registry.add_function(name, func)
    return registry


def _freeze_start_up_objects() -> None:
    """GC_FREEZE_ON_START: collects what is garbage now, then moves everything alive to the
    permanent generation, which full collections no longer walk.

    Why: a full (generation 2) collection holds the GIL while it walks every tracked object; in
    a service, the modules, the app and its registries are most of them, and they live as long
    as the process. Frozen objects are still freed by reference counting; only cycles among them
    are never collected, hence the collect() first.
    """
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    log.info(
        "gc_frozen",
        objects=gc.get_freeze_count(),
        collect_ms=round((time.perf_counter() - started) * 1000, 1),
    )
