"""Service configuration: one pydantic-settings object, read from the environment and `.env`.

Build it with `load_settings()` at start-up and pass it down (the app, the scheduler, the
consumer and the tasks all take it); nothing else reads `os.environ`. Tests build their own.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

TASK_OVERRIDE_PREFIX = "TASK_"


class SettingsError(RuntimeError):
    """A configuration value is invalid; the message names the variable."""


class Settings(BaseSettings):
    """Every knob of the service. Environment variable = field name in upper case."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    # --- storage -----------------------------------------------------------------------
    database_url: str = "sqlite:///./data/scheduler.db"
    database_pool_size: int = Field(default=10, ge=1, le=200)
    sqlite_busy_timeout_ms: int = Field(default=5000, ge=0)

    # --- logging -----------------------------------------------------------------------
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["json", "text"] = "json"

    # --- HTTP API ----------------------------------------------------------------------
    admin_token: SecretStr | None = None
    admin_token_file: Path = Path("./data/admin_token")

    # --- scheduler ---------------------------------------------------------------------
    scheduler_enabled: bool = True
    worker_threads: int = Field(default=8, ge=1, le=256)
    process_workers: int = Field(default=2, ge=1, le=64)
    shutdown_grace_seconds: float = Field(default=25.0, ge=0, le=600)
    loop_stall_seconds: float = Field(default=5.0, gt=0)
    # Per-task overrides, filled from TASK_<NAME>_INTERVAL_SECONDS / TASK_<NAME>_ENABLED.
    task_intervals: dict[str, int] = Field(default_factory=dict)
    task_enabled: dict[str, bool] = Field(default_factory=dict)
    builtin_tasks: bool = True

    # --- built-in tasks ----------------------------------------------------------------
    notify_webhook_url: str | None = None
    notify_webhook_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    notify_max_attempts: int = Field(default=5, ge=1, le=100)
    notify_backoff_base_seconds: float = Field(default=10.0, gt=0)
    notify_batch_size: int = Field(default=100, ge=1, le=10_000)
    retention_runs_days: int = Field(default=14, ge=1)
    retention_notifications_days: int = Field(default=7, ge=1)
    retention_events_days: int = Field(default=30, ge=1)
    retention_batch_size: int = Field(default=1000, ge=1, le=100_000)
    report_window_minutes: int = Field(default=15, ge=1)

    # --- Kafka consumer ----------------------------------------------------------------
    kafka_enabled: bool = True
    # confluent-kafka (librdkafka) needs `pip install -r requirements-confluent.txt`.
    kafka_client: Literal["kafka-python", "confluent-kafka"] = "kafka-python"
    kafka_bootstrap_servers: str | None = None
    kafka_topics: str = "events"
    kafka_group_id: str = "service-scheduler"
    kafka_dlq_topic: str | None = None
    # Upper bound of one poll = one transaction = one offset commit (a batch is what one poll returns).
    kafka_batch_size: int = Field(default=2000, ge=1, le=100_000)
    kafka_poll_timeout_ms: int = Field(default=500, ge=1, le=60_000)
    kafka_fetch_max_wait_ms: int = Field(default=100, ge=0, le=10_000)
    kafka_max_poll_interval_ms: int = Field(default=300_000, ge=1000)
    kafka_session_timeout_ms: int = Field(default=10_000, ge=1000)
    kafka_heartbeat_interval_ms: int = Field(default=3_000, ge=100)
    kafka_request_timeout_ms: int = Field(default=30_000, ge=1000)
    kafka_max_attempts: int = Field(default=3, ge=1, le=100)
    # A handler call longer than this reports the consumer `stuck` (threads cannot be interrupted).
    kafka_handler_timeout_seconds: float = Field(default=60.0, gt=0)
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
        return value

    @property
    def topics(self) -> list[str]:
        """The configured Kafka topics as a list."""
        return [topic.strip() for topic in self.kafka_topics.split(",") if topic.strip()]


def _task_overrides(environ: dict[str, str]) -> dict[str, dict]:
    """Collects TASK_<NAME>_INTERVAL_SECONDS / TASK_<NAME>_ENABLED into settings fields."""
    intervals: dict[str, str] = {}
    enabled: dict[str, str] = {}
    for key, value in environ.items():
        upper = key.upper()
        if not upper.startswith(TASK_OVERRIDE_PREFIX):
            continue
        body = upper[len(TASK_OVERRIDE_PREFIX):]
        for suffix, target in (("_INTERVAL_SECONDS", intervals), ("_ENABLED", enabled)):
            if body.endswith(suffix) and len(body) > len(suffix):
                name = body[: -len(suffix)].lower().replace("__", "-")
                target[name] = value
    overrides: dict[str, dict] = {}
    if intervals:
        overrides["task_intervals"] = intervals
    if enabled:
        overrides["task_enabled"] = enabled
    return overrides


def load_settings(environ: dict[str, str] | None = None, **overrides: object) -> Settings:
    """Builds Settings from the environment (or `environ`), raising SettingsError naming the bad variable."""
    source = dict(os.environ if environ is None else environ)
    values = {**_task_overrides(source), **overrides}
    try:
        if environ is None:
            return Settings(**values)
        lowered = {k.lower(): v for k, v in source.items() if k.lower() in Settings.model_fields}
        return Settings(_env_file=None, **{**lowered, **values})
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    """One line per bad value, naming the environment variable and what is wrong."""
    parts = []
    for error in exc.errors():
        location = [str(p) for p in error["loc"]]
        if location and location[0] in ("task_intervals", "task_enabled") and len(location) > 1:
            suffix = "INTERVAL_SECONDS" if location[0] == "task_intervals" else "ENABLED"
            variable = f"TASK_{location[1].upper()}_{suffix}"
        else:
            variable = (location[0] if location else "settings").upper()
        shown = "***" if any(w in variable for w in ("TOKEN", "PASSWORD")) else repr(error.get("input"))
        parts.append(f"invalid setting {variable}: {error['msg']} (got {shown})")
    return "; ".join(parts)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings for the default app (FastAPI dependency; tests override it)."""
    return load_settings()
