"""Check-ins: after each successful run of a task with a check-in URL, a GET to it, so that an
external dead-man's switch (Healthchecks.io, Sentry Crons, Cronitor, ...) alerts when the
successes stop for any reason, the whole service being down included.

The GET happens on its own small thread pool with a bounded timeout (CHECKIN_TIMEOUT_SECONDS):
it never delays the run or changes its outcome. A failure (an error answer, no answer in time,
a refused connection) is counted (`task_checkins_total{outcome="failed"}`) and logged once
(`task_checkin_failed`); the next success checks in again. Only the replica that ran the run
checks in (the launcher calls this for runs it was admitted to), so a cluster checks in once
per slot.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx

from servicescheduler.logs import get_logger
from servicescheduler.metrics import Metrics
from servicescheduler.scheduling.registry import TaskSpec
from servicescheduler.settings import Settings
from servicescheduler.support.exception_text import exception_text

log = get_logger(__name__)

CHECKIN_THREADS = 2  # a hanging receiver holds one thread for at most the timeout
MAX_PENDING = 100  # beyond it (a receiver hanging while runs succeed fast), check-ins are dropped and counted


class CheckIns:
    """Sends check-ins in the background; `after_success` returns at once."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self._overrides = settings.task_checkin_urls
        self._timeout = settings.checkin_timeout_seconds
        self._metrics = metrics
        self._pool: ThreadPoolExecutor | None = None  # started with the first check-in
        self._lock = threading.Lock()
        self._pending = 0
        self._closed = False

    def url(self, spec: TaskSpec) -> str | None:
        """The task's check-in URL: TASK_<NAME>_CHECKIN_URL, else its declared `checkin_url`."""
        return self._overrides.get(spec.name, spec.checkin_url)

    def after_success(self, spec: TaskSpec, run_id: str) -> None:
        """Queues the check-in of a successful run of `spec` (nothing when it has no URL)."""
        url = self.url(spec)
        if url is None:
            return
        with self._lock:
            if self._closed:
                return
            if self._pending >= MAX_PENDING:
                self._failed(spec.name, run_id, url, f"{MAX_PENDING} check-ins already waiting", "dropped")
                return
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=CHECKIN_THREADS, thread_name_prefix="task-checkin")
            self._pending += 1
            self._pool.submit(self._send, spec.name, run_id, url)

    def _send(self, task: str, run_id: str, url: str) -> None:
        try:
            # GET: what every check-in service accepts; no body, no credentials but the URL's own.
            response = httpx.get(url, timeout=self._timeout, follow_redirects=True)
            if response.status_code >= 300:
                self._failed(task, run_id, url, f"answered HTTP {response.status_code}")
            else:
                self._metrics.task_checkins.labels(task, "ok").inc()
        except Exception as exc:  # timeouts, refused connections, bad TLS: counted, never raised
            self._failed(task, run_id, url, exception_text(exc))
        finally:
            with self._lock:
                self._pending -= 1

    def _failed(self, task: str, run_id: str, url: str, error: str, outcome: str = "failed") -> None:
        self._metrics.task_checkins.labels(task, outcome).inc()
        log.warning(
            "task_checkin_failed",
            task=task,
            run_id=run_id,
            # The host only: a check-in URL's path is its secret (anyone holding it can check in).
            host=urlsplit(url).hostname,
            outcome=outcome,
            timeout_seconds=self._timeout,
            error=error[:500],
        )

    def close(self) -> None:
        """Stops sending: queued check-ins are dropped, one in flight ends within its timeout."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
