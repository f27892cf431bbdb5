"""Service configuration: one pydantic-settings object, read from the environment and `.env`.

Build it with `load_settings()` at start-up and pass it down (the app, the scheduler, the
consumer and the tasks all take it); nothing else reads `os.environ`. Tests build their own.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from dotenv import dotenv_values
from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from sqlalchemy.engine import make_url

from servicescheduler.support.redact import mask_url_passwords
from servicescheduler.support.validation import Location, describe_errors

TASK_OVERRIDE_PREFIX = "TASK_"
ENV_FILE = ".env"
# Bounds of an interval, the same as the API's PATCH /tasks/{name}.
MIN_INTERVAL_SECONDS = 1
MAX_INTERVAL_SECONDS = 7 * 24 * 3600
SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
IntervalSeconds = Annotated[int, Field(ge=MIN_INTERVAL_SECONDS, le=MAX_INTERVAL_SECONDS)]
CheckinUrl = Annotated[str, Field(pattern=r"^https?://\S+$", max_length=2048)]


class SettingsError(RuntimeError):
    """A configuration value is invalid; the message names the variable."""


class Settings(BaseSettings):
    """Every knob of the service. Environment variable = field name in upper case."""

    model_config = SettingsConfigDict(env_file=ENV_FILE, extra="ignore", frozen=True)

    # --- storage -----------------------------------------------------------------------
    database_url: str = "sqlite:///./data/scheduler.db"
    database_pool_size: int = Field(default=10, ge=1, le=200)
    sqlite_busy_timeout_ms: int = Field(default=5000, ge=0)
    # PostgreSQL only: the schema of the service's tables (created by `servicescheduler migrate`);
    # none = the connection's default schema. Isolates it from a host application's tables.
    database_schema: str | None = None
    # Start-up applies pending migrations; false: it only checks, and `servicescheduler migrate` applies them.
    migrate_on_start: bool = True

    # --- logging -----------------------------------------------------------------------
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["json", "text"] = "json"

    # --- HTTP API ----------------------------------------------------------------------
    admin_token: SecretStr | None = None
    admin_token_file: Path = Path("./data/admin_token")
    # Request bodies above this are refused with 413 while they stream in, before parsing.
    max_request_bytes: int = Field(default=1_048_576, ge=1024, le=1_073_741_824)

    # --- scheduler ---------------------------------------------------------------------
    scheduler_enabled: bool = True
    worker_threads: int = Field(default=8, ge=1, le=256)
    process_workers: int = Field(default=2, ge=1, le=64)
    # Added to the niceness of process-pool workers: a CPU-bound task then yields the CPU to the
    # server's own threads (the API, the loop) on a busy machine. Opt-in: at 0, GET /tasks beside a
    # CPU-bound process task is already 1.1x idle in benchmark 6 here (docs/benchmarks.md).
    process_pool_nice: int = Field(default=0, ge=0, le=19)
    shutdown_grace_seconds: float = Field(default=25.0, ge=0, le=600)
    # gc.collect() then gc.freeze() once at start: Python's full collections stop every thread
    # while they walk every object alive, and a service's start-up objects are most of them
    # (~60 ms for a started service, docs/benchmarks.md 12). Process-wide, so opt-in for a host
    # app; the reference service's container and `make run` turn it on.
    gc_freeze_on_start: bool = False
    loop_stall_seconds: float = Field(default=5.0, gt=0)
    # Run-history records waiting to be stored (e.g. while the database is down); beyond it,
    # records are dropped and counted (metric run_history_dropped_total{reason="queue_full"}).
    recorder_queue_limit: int = Field(default=10_000, ge=1, le=10_000_000)
    # Per-task overrides, filled from TASK_<NAME>_INTERVAL_SECONDS / TASK_<NAME>_ENABLED
    # (environment or .env; the environment wins).
    task_intervals: dict[str, IntervalSeconds] = Field(default_factory=dict)
    task_enabled: dict[str, bool] = Field(default_factory=dict)
    # TASK_<NAME>_CHECKIN_URL: GET after each successful run (wins over the declared checkin_url).
    task_checkin_urls: dict[str, CheckinUrl] = Field(default_factory=dict)
    # Each check-in's limit (connect, and then the answer): a receiver that hangs costs only this.
    checkin_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    # Which built-in tasks (services/) this instance runs: "all", "" (none) or a comma-separated list.
    builtin_tasks: str = "all"
    # Your own task modules, comma-separated importable names, imported after the built-ins.
    task_modules: str = ""

    # --- several replicas on one database (README "Running several replicas") --------------
    cluster_enabled: bool = True
    cluster_replica_ttl_seconds: float = Field(default=15.0, ge=1, le=3600)

    # --- built-in tasks ----------------------------------------------------------------
    notify_webhook_url: str | None = None
    notify_webhook_timeout_seconds: float = Field(default=5.0, gt=0, le=60)  # a batch must end within the run
    notify_max_attempts: int = Field(default=5, ge=1, le=100)
    notify_backoff_base_seconds: float = Field(default=10.0, gt=0)
    notify_batch_size: int = Field(default=100, ge=1, le=10_000)
    retention_runs_days: int = Field(default=14, ge=1)
    retention_notifications_days: int = Field(default=7, ge=1)
    retention_events_days: int = Field(default=30, ge=1)
    retention_audit_days: int = Field(default=90, ge=1)
    retention_batch_size: int = Field(default=1000, ge=1, le=100_000)
    # One cleanup run deletes batches until done or this has passed (below its 240 s timeout).
    retention_time_budget_seconds: float = Field(default=180.0, gt=0, le=230)
    report_window_minutes: int = Field(default=15, ge=1)

    # --- Kafka consumer ----------------------------------------------------------------
    # None (the default): consume when KAFKA_BOOTSTRAP_SERVERS is set; see `consumes_kafka`.
    kafka_enabled: bool | None = None
    # confluent-kafka (librdkafka) needs `pip install -r requirements-confluent.txt`.
    kafka_client: Literal["kafka-python", "confluent-kafka"] = "kafka-python"
    kafka_bootstrap_servers: str | None = Field(default=None, validate_default=True)
    kafka_topics: str = "events"
    kafka_group_id: str = "service-scheduler"
    kafka_dlq_topic: str | None = None
    # Upper bound of one poll = one transaction = one offset commit (a batch is what one poll returns).
    kafka_batch_size: int = Field(default=2000, ge=1, le=100_000)
    # Store batch N on a thread while batch N+1 is polled (consumers/storeahead.py). "auto": on
    # for SQLite and for PostgreSQL with kafka-python (measured faster), off for PostgreSQL with
    # confluent-kafka (no faster, more CPU; see docs/benchmarks.md section 7).
    kafka_store_ahead: Literal["auto", "on", "off"] = "auto"
    # read_committed: records of aborted (and still open) transactions are never stored.
    kafka_isolation_level: Literal["read_committed", "read_uncommitted"] = "read_committed"
    kafka_poll_timeout_ms: int = Field(default=500, ge=1, le=60_000)
    kafka_fetch_max_wait_ms: int = Field(default=100, ge=0, le=10_000)
    kafka_max_poll_interval_ms: int = Field(default=300_000, ge=1000)
    kafka_session_timeout_ms: int = Field(default=10_000, ge=1000)
    kafka_heartbeat_interval_ms: int = Field(default=3_000, ge=100)
    kafka_request_timeout_ms: int = Field(default=30_000, ge=1000)
    kafka_max_attempts: int = Field(default=3, ge=1, le=100)
    # A handler call longer than this reports the consumer `stuck` (threads cannot be interrupted).
    kafka_handler_timeout_seconds: float = Field(default=60.0, gt=0)
    # Behind (lag > 0) with nothing consumed for this long reports the consumer `stalled` and
    # /ready 503: the worker's thread is alive, so nothing else would say it is not working.
    kafka_stall_seconds: float = Field(default=60.0, gt=0)
    kafka_max_message_bytes: int = Field(default=1_048_576, ge=1024)
    kafka_dead_letter_value_cap_bytes: int = Field(default=65_536, ge=0)
    kafka_stop_timeout_seconds: float = Field(default=10.0, gt=0)
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = None
    consumer_backoff_base_seconds: float = Field(default=1.0, gt=0)
    consumer_backoff_factor: float = Field(default=2.0, ge=1)
    consumer_backoff_cap_seconds: float = Field(default=30.0, gt=0)
    consumer_backoff_reset_seconds: float = Field(default=60.0, gt=0)
    consumer_crash_loop_restarts: int = Field(default=5, ge=1)
    consumer_crash_loop_window_seconds: float = Field(default=300.0, gt=0)
    consumer_ready_grace_seconds: float = Field(default=30.0, ge=0)
    consumer_broker_stale_seconds: float = Field(default=15.0, gt=0)

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must be a sqlite:/// or postgresql+psycopg:// URL")
        try:
            make_url(value)
        except Exception:  # ArgumentError, ValueError (a bad port): the message would echo the URL
            raise ValueError("is not a valid database URL (scheme://user:password@host:port/name)") from None
        return value

    @field_validator("database_schema")
    @classmethod
    def _schema_name(cls, value: str | None, info: ValidationInfo) -> str | None:
        if not value:
            return None
        # It goes into a connection option and a CREATE SCHEMA: a plain lower-case identifier only.
        if not SCHEMA_NAME.fullmatch(value) or value.startswith("pg_"):
            raise ValueError("must be a lower-case identifier (a-z, 0-9, _; at most 63; not pg_...)")
        if str(info.data.get("database_url", "")).startswith("sqlite"):
            raise ValueError("is for PostgreSQL only: a SQLite database has no schemas (unset it or use PostgreSQL)")
        return value

    @field_validator("notify_webhook_url")
    @classmethod
    def _http_webhook(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _brokers_when_enabled(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("kafka_enabled") and not value:
            raise ValueError(
                "must name the brokers when KAFKA_ENABLED is true (leave KAFKA_ENABLED unset to consume "
                "only when brokers are configured)"
            )
        return value

    @property
    def consumes_kafka(self) -> bool:
        """Whether this instance runs the Kafka consumer: KAFKA_ENABLED, or by default whether
        brokers are configured (a library user who only wants tasks needs no Kafka at all)."""
        if self.kafka_enabled is None:
            return bool(self.kafka_bootstrap_servers)
        return self.kafka_enabled

    @property
    def topics(self) -> list[str]:
        """The configured Kafka topics as a list."""
        return _names(self.kafka_topics)

    @property
    def builtin_task_names(self) -> list[str]:
        """BUILTIN_TASKS as a list (meaningless when it is "all")."""
        return _names(self.builtin_tasks)

    @property
    def task_module_names(self) -> list[str]:
        """TASK_MODULES as a list of module names, in order."""
        return _names(self.task_modules)


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _task_overrides(environ: dict[str, str]) -> dict[str, dict[str, str]]:
    """Collects TASK_<NAME>_INTERVAL_SECONDS / _ENABLED / _CHECKIN_URL into settings fields."""
    intervals: dict[str, str] = {}
    enabled: dict[str, str] = {}
    checkins: dict[str, str] = {}
    for key, value in environ.items():
        upper = key.upper()
        if not upper.startswith(TASK_OVERRIDE_PREFIX):
            continue
        body = upper[len(TASK_OVERRIDE_PREFIX) :]
        for suffix, target in (("_INTERVAL_SECONDS", intervals), ("_ENABLED", enabled), ("_CHECKIN_URL", checkins)):
            if body.endswith(suffix) and len(body) > len(suffix):
                name = body[: -len(suffix)].lower().replace("__", "-")
                target[name] = value
    overrides: dict[str, dict[str, str]] = {}
    if intervals:
        overrides["task_intervals"] = intervals
    if enabled:
        overrides["task_enabled"] = enabled
    if checkins:
        overrides["task_checkin_urls"] = checkins
    return overrides


class _ExplicitSettings(Settings):
    """Settings from the values given and the defaults only."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def settings_from(**values: object) -> Settings:
    """Settings from `values` and the defaults, reading no environment variable and no `.env`
    (what `ServiceScheduler(database_url=...)` uses). Raises SettingsError naming a bad value."""
    try:
        return _ExplicitSettings(**values)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None


def load_settings(environ: dict[str, str] | None = None, **overrides: object) -> Settings:
    """Builds Settings from the environment (or `environ`), raising SettingsError naming the bad variable."""
    if environ is None:
        # pydantic-settings reads .env for declared fields only: TASK_* are read from it here.
        from_file = dotenv_values(ENV_FILE) if Path(ENV_FILE).is_file() else {}
        source = {**{k: v for k, v in from_file.items() if v is not None}, **os.environ}
    else:
        source = dict(environ)
    values: dict[str, Any] = {**_task_overrides(source), **overrides}
    try:
        if environ is None:
            return Settings(**values)
        lowered = {k.lower(): v for k, v in source.items() if k.lower() in Settings.model_fields}
        return Settings(_env_file=None, **{**lowered, **values})
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None


_TASK_SUFFIXES = {"task_intervals": "INTERVAL_SECONDS", "task_enabled": "ENABLED", "task_checkin_urls": "CHECKIN_URL"}


def _variable(location: Location) -> str:
    """The environment variable a settings error location stands for."""
    parts = [str(p) for p in location]
    if parts and parts[0] in _TASK_SUFFIXES and len(parts) > 1:
        return f"TASK_{parts[1].upper().replace('-', '__')}_{_TASK_SUFFIXES[parts[0]]}"
    return (parts[0] if parts else "settings").upper()


def _describe(exc: ValidationError) -> str:
    """One clause per bad value, naming the environment variable and what is wrong (secrets masked)."""

    def shown(error: Any) -> str:
        secret = any(word in _variable(error["loc"]) for word in ("TOKEN", "PASSWORD", "SECRET"))
        return f" (got {'***' if secret else mask_url_passwords(repr(error.get('input')))})"

    return describe_errors(exc.errors(), name=lambda loc: f"invalid setting {_variable(loc)}", extra=shown)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings for the default app (FastAPI dependency; tests override it)."""
    return load_settings()
