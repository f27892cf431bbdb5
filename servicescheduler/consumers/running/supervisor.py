"""ConsumerSupervisor: keeps one ConsumerWorker running, restarting it with jittered backoff.

`check(now)` runs on the scheduler loop thread and never blocks: it only looks at the worker's
published snapshot, starts a thread, or schedules a restart. Blocking work (stopping the thread
for a disable or restart) happens in the calling request thread.

One check chain: each check asks for the next one, and enable/restart wake the loop for an
immediate check; the CheckChain lets a check end its chain when another pending check will come
first, so any number of enable/restart calls leave exactly one chain. A worker whose thread does
not end when stopped (a handler hanging) is kept as `draining`: no second consumer is started
beside it until its thread is gone.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from servicescheduler.consumers.running.checkchain import CheckChain
from servicescheduler.consumers.running.stall import StallWatch
from servicescheduler.consumers.running.supervised import StateStore, Worker
from servicescheduler.consumers.running.topic_counts import merge_topic_counts, topics_view
from servicescheduler.logs import get_logger
from servicescheduler.metrics import Metrics
from servicescheduler.settings import Settings
from servicescheduler.support.backoff import backoff_delay
from servicescheduler.support.clock import iso
from servicescheduler.vocabulary import ConsumerState, WorkerState

if TYPE_CHECKING:
    from servicescheduler.consumers.running.status import WorkerSnapshot

log = get_logger(__name__)

STATE_NAME = "consumer-kafka"  # row in task_state holding the operator's enabled flag
CHECK_SECONDS = 1.0  # how often a running worker is looked at
# The scheduler dispatches checks up to DISPATCH_LEAD_SECONDS early and never checks more often
# than every 10 ms: a restart due within this slack is done now instead of being re-checked.
EARLY_SLACK_SECONDS = 0.01
COUNTERS = ("messages_processed", "events_stored", "duplicates_skipped", "dead_lettered")


class ConsumerSupervisor:
    """Supervised component `kafka-consumer`: start, check/restart, enable/disable, status."""

    name = "kafka-consumer"
    state_name = STATE_NAME

    def __init__(
        self,
        *,
        settings: Settings,
        states: StateStore,
        metrics: Metrics,
        worker_factory: Callable[[], Worker],
        wake: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.states = states
        self.metrics = metrics
        self._factory = worker_factory
        self._wake = wake
        self._clock = clock
        self._rng = rng or random.Random()
        self._lock = threading.RLock()
        self._control = threading.Lock()
        self._worker: Worker | None = None
        self._draining: Worker | None = None  # stopped, but its thread has not ended yet
        self._chain = CheckChain(EARLY_SLACK_SECONDS)
        self._stuck_logged = False
        self._stall = StallWatch(settings.kafka_stall_seconds)
        self._enabled = True
        self._started = self._stopping = False
        self._state: ConsumerState = ConsumerState.STARTING
        self._attempt = 0
        self._restart_at: float | None = None
        self._restarts = 0
        self._recent: deque[float] = deque()
        self._running_since: float | None = None
        self._down_since: float = clock()
        self._last_error: str | None = None
        self._totals = dict.fromkeys(COUNTERS, 0)
        self._topic_totals: dict[str, tuple[int, int, int]] = {}  # of finished workers, per topic
        metrics.on_scrape(self._refresh_metrics)

    # ------------------------------------------------------------------ lifecycle
    def load_state(self) -> None:
        """Reads the persisted enabled flag (creating it on first start). Call before start()."""
        persisted = self.states.load().get(STATE_NAME)
        if persisted is None:
            self.states.create({STATE_NAME: (True, None)})
        self._enabled = True if persisted is None else persisted.enabled
        self._state = ConsumerState.STARTING if self._enabled else ConsumerState.DISABLED

    def start(self) -> None:
        """Starts the worker thread when enabled; never blocks (bootstrapping is in the thread)."""
        with self._lock:
            if self._started:
                return
            self._started = True
            if self._enabled:
                self._start_worker(self._clock())

    def stop(self, timeout: float) -> None:
        """Stops the worker for shutdown (commit, leave the group, close) within `timeout`."""
        with self._lock:
            self._stopping = True
            worker, self._worker = self._worker, None
        if worker is not None:
            worker.stop(timeout)
            self._absorb(worker)
        with self._lock:
            self._state = ConsumerState.STOPPED
            self.metrics.consumer_up.set(0)

    def _start_worker(self, now: float) -> None:
        """Creates and starts a fresh worker (lock held)."""
        self._worker = self._factory()
        self._stall.reset()
        self._worker.start()
        self._state = ConsumerState.CRASH_LOOPING if self._crash_looping(now) else ConsumerState.STARTING
        self._restart_at = None
        self._running_since = None

    # ------------------------------------------------------------------ loop-thread check
    def check(self, now: float) -> float | None:
        """Restarts a dead worker after backoff; returns when to be checked next (None: idle)."""
        with self._lock:
            self._chain.fired(now)
            return self._chain.next_after(now, self._check(now))

    def _wake_once(self) -> None:
        """Wakes the loop for an immediate check (its chain dedupes against the pending one)."""
        with self._lock:
            self._chain.woken(self._clock())
        self._wake()

    def _check(self, now: float) -> float | None:
        with self._lock:
            if not self._started:
                self.start()
            if self._stopping or not self._enabled:
                return None
            if self._draining is not None:
                if self._draining.is_alive():
                    self._state = ConsumerState.STUCK if self._is_stuck(self._draining) else ConsumerState.STOPPING
                    return now + CHECK_SECONDS
                self._absorb(self._draining)
                self._draining = None
            worker = self._worker
            if worker is None:
                if self._restart_at is not None and now < self._restart_at - EARLY_SLACK_SECONDS:
                    return self._restart_at
                self._start_worker(now)
                return now + CHECK_SECONDS
            if worker.is_alive():
                self._observe_alive(worker, now)
                return now + CHECK_SECONDS
            return self._schedule_restart(worker, now)

    def _observe_alive(self, worker: Worker, now: float) -> None:
        """Tracks running time; resets the backoff after a healthy stretch; reports a hung handler."""
        if self._is_stuck(worker):
            self._state = ConsumerState.STUCK
            self.metrics.consumer_up.set(0)
            return
        snap = worker.snapshot()
        if snap.state in (WorkerState.RUNNING, WorkerState.DB_UNAVAILABLE):  # alive and polling either way
            if self._running_since is None:
                self._running_since = now
            self._down_since = now
            if now - self._running_since >= self.settings.consumer_backoff_reset_seconds:
                self._attempt = 0
            # db_unavailable pauses the partitions on purpose: behind and idle is expected there.
            stalled = None
            if snap.state == WorkerState.RUNNING:
                stalled = self._stall.observe(snap, now)
            else:
                self._stall.reset()
            if stalled is not None:
                self._state = ConsumerState.STALLED
            elif not self._crash_looping(now):
                self._state = ConsumerState.RUNNING
            elif self._state != ConsumerState.RUNNING:
                self._state = ConsumerState.CRASH_LOOPING
        self.metrics.consumer_up.set(1 if self._state == ConsumerState.RUNNING else 0)

    def _schedule_restart(self, worker: Worker, now: float) -> float:
        """The worker died: records why, counts the restart and returns its due time."""
        self._worker = None
        self._absorb(worker)
        cause = worker.fatal_error or "consumer thread ended unexpectedly"
        self._last_error = cause
        healthy_for = None if self._running_since is None else now - self._running_since
        if healthy_for is not None and healthy_for >= self.settings.consumer_backoff_reset_seconds:
            self._attempt = 0
        self._recent.append(now)
        looping = self._crash_looping(now)
        s = self.settings
        delay = (
            s.consumer_backoff_cap_seconds
            if looping
            else backoff_delay(
                self._attempt,
                base=s.consumer_backoff_base_seconds,
                factor=s.consumer_backoff_factor,
                cap=s.consumer_backoff_cap_seconds,
                rng=self._rng,
            )
        )
        self._attempt += 1
        self._restarts += 1
        self._restart_at = now + max(delay, 2 * EARLY_SLACK_SECONDS)
        self._state = ConsumerState.CRASH_LOOPING if looping else ConsumerState.BACKOFF
        self.metrics.consumer_restarts.inc()
        self.metrics.consumer_up.set(0)
        self.metrics.consumer_crash_looping.set(1 if looping else 0)
        log.warning(
            "consumer_restart",
            attempt=self._attempt,
            delay_seconds=round(delay, 3),
            cause=cause,
            crash_looping=looping,
            restarts_in_window=len(self._recent),
        )
        return self._restart_at

    def _is_stuck(self, worker: Worker) -> bool:
        """True while a handler outlives KAFKA_HANDLER_TIMEOUT_SECONDS (logged once per hang)."""
        running = worker.running_handler()
        limit = self.settings.kafka_handler_timeout_seconds
        if running is None or time.monotonic() - running.since < limit:
            self._stuck_logged = False
            return False
        seconds = time.monotonic() - running.since
        self._last_error = (
            f"handler for event {running.event_id[:128]!r} ({running.event_type[:128]}) at "
            f"{running.position} running for {seconds:.0f} s (limit {limit:g} s)"
        )
        if not self._stuck_logged:
            self._stuck_logged = True
            log.error(
                "consumer_handler_stuck",
                event_id=running.event_id[:128],
                event_type=running.event_type[:128],
                position=running.position,
                seconds=round(seconds, 1),
                limit_seconds=limit,
                hint="the thread cannot be interrupted; fix the handler, then restart the process",
            )
        return True

    def _crash_looping(self, now: float) -> bool:
        window = self.settings.consumer_crash_loop_window_seconds
        while self._recent and now - self._recent[0] > window:
            self._recent.popleft()
        return len(self._recent) >= self.settings.consumer_crash_loop_restarts

    def _absorb(self, worker: Worker) -> None:
        """Folds a finished worker's counters into the totals (status counts across restarts)."""
        snap = worker.snapshot()
        with self._lock:
            for key in COUNTERS:
                self._totals[key] += getattr(snap, key)
            self._topic_totals = merge_topic_counts(self._topic_totals, snap.topics)
            if snap.last_error:
                self._last_error = snap.last_error

    # ------------------------------------------------------------------ control (request threads)
    def set_enabled(self, enabled: bool, *, actor: str) -> dict[str, Any]:
        """Enable starts the worker, disable stops it (blocking, bounded); both persisted. Returns status."""
        with self._control:
            if enabled != self._enabled:
                self.states.change(STATE_NAME, actor=actor, action="enable" if enabled else "disable", enabled=enabled)
            if enabled:
                self._enable()
            else:
                self._disable()
            log.info("consumer_enabled" if enabled else "consumer_disabled", actor=actor)
        return self.status()

    def apply_shared(self, enabled: bool) -> None:
        """Cluster hook: applies an enable/disable persisted by another replica (no write, no audit)."""
        with self._control:
            if enabled == self._enabled:
                return
            if enabled:
                self._enable()
            else:
                self._disable()
            log.info("consumer_enabled" if enabled else "consumer_disabled", actor="cluster")

    def _enable(self) -> None:
        with self._lock:
            self._enabled = True
            if self._worker is None and self._draining is None and not self._stopping:
                self._attempt, self._recent = 0, deque()
                self._down_since = self._clock()
                self._start_worker(self._clock())
        self._wake_once()

    def _disable(self) -> None:
        with self._lock:
            self._enabled = False
            self._restart_at = None
        self._stop_or_drain()
        with self._lock:
            self._state = ConsumerState.DISABLED
            self.metrics.consumer_up.set(0)

    def restart(self, *, actor: str) -> dict[str, Any]:
        """Stops the worker (blocking, bounded) and starts a fresh one; audited. Returns status."""
        with self._control:
            self.states.change(STATE_NAME, actor=actor, action="restart")
            self._stop_or_drain()
            with self._lock:
                if self._draining is not None:
                    self._state = ConsumerState.STUCK if self._is_stuck(self._draining) else ConsumerState.STOPPING
                    log.warning(
                        "consumer_restart_deferred",
                        actor=actor,
                        reason=self._last_error,
                        hint="the old consumer thread is still running; a new one starts when it ends",
                    )
                elif self._enabled and not self._stopping:
                    self._attempt, self._recent = 0, deque()
                    self._start_worker(self._clock())
                    log.info("consumer_restarted", actor=actor)
        self._wake_once()
        return self.status()

    def _stop_or_drain(self) -> None:
        """Stops the worker (bounded). It is `draining` meanwhile (moved under the lock in one
        step), so a loop check never starts a second consumer beside it; one whose thread
        outlives the bound stays draining."""
        with self._lock:
            worker = self._worker or self._draining
            self._worker = None
            if worker is None:
                return
            self._draining = worker
        if worker.stop(self.settings.kafka_stop_timeout_seconds):
            with self._lock:
                mine = self._draining is worker  # else a loop check already absorbed it
                if mine:
                    self._draining = None
                    self._absorb(worker)

    # ------------------------------------------------------------------ inspection
    def status(self) -> dict[str, Any]:
        """The API view: state, counters across restarts, partitions, lag, broker reachability."""
        now = self._clock()
        with self._lock:
            worker, state = self._worker, self._state
            body: dict[str, Any] = {
                "enabled": self._enabled,
                "state": state,
                "restarts": self._restarts,
                "last_error": self._last_error,
                "backoff_until": iso(self._restart_at),
                **self._totals,
            }
            topic_totals = self._topic_totals
        snap = worker.snapshot() if worker is not None else None
        live = snap if snap is not None and worker is not None and worker.is_alive() else None
        storing = _storing_failure(state, live)
        if storing is not None:
            body.update(
                state=ConsumerState.DB_UNAVAILABLE,
                detail=f"cannot store events for {now - storing[1]:.0f} s: {storing[0]}",
            )
        elif state == ConsumerState.STALLED:
            body["detail"] = self._stall.reason
        for key in COUNTERS:
            body[key] += getattr(snap, key) if snap else 0
        body.update(
            last_error=(snap.last_error if snap else None) or body["last_error"],
            assigned_partitions=list(live.assigned_partitions) if live is not None else [],
            last_message_at=iso(snap.last_message_at if snap else None),
            seconds_since_last_poll=(
                round(now - live.last_poll_at, 3) if live is not None and live.last_poll_at else None
            ),
            broker_reachable=live.broker_connected if live is not None else None,
            lag=live.lag if live is not None else None,
            topics=topics_view(
                merge_topic_counts(topic_totals, snap.topics if snap else {}), live.lag if live is not None else None
            ),
        )
        return body

    def readiness(self) -> tuple[bool, str]:
        """Not ready when enabled but not running past the grace, or the broker is gone too long."""
        now = self._clock()
        with self._lock:
            if not self._enabled:
                return True, "disabled"
            worker, state = self._worker, self._state
            if state == ConsumerState.RUNNING:
                self._down_since = now
            down_for = now - self._down_since
        live = worker.snapshot() if worker is not None and worker.is_alive() else None
        storing = _storing_failure(state, live)
        if storing is not None:  # no grace: the failed store already waited out the database's own timeout
            return False, f"consumer {ConsumerState.DB_UNAVAILABLE} for {now - storing[1]:.0f} s: {storing[0]}"
        if state == ConsumerState.STALLED:  # no grace: the stall bound already waited
            return False, f"consumer {state}: {self._stall.reason}"
        if state != ConsumerState.RUNNING:
            if down_for > self.settings.consumer_ready_grace_seconds:
                return False, f"consumer {state} for {down_for:.0f} s: {self._last_error or 'starting'}"
            return True, f"consumer {state}"
        snap = worker.snapshot() if worker is not None else None
        if snap and snap.broker_ok_at and now - snap.broker_ok_at > self.settings.consumer_broker_stale_seconds:
            return False, f"Kafka broker unreachable for {now - snap.broker_ok_at:.0f} s"
        return True, "ok"

    def _refresh_metrics(self) -> None:
        """Scrape-time gauges: running, crash looping and lag per partition."""
        body = self.status()
        self.metrics.consumer_up.set(1 if body["state"] == ConsumerState.RUNNING else 0)
        self.metrics.consumer_crash_looping.set(1 if body["state"] == ConsumerState.CRASH_LOOPING else 0)
        # Only the partitions this replica consumes now: a partition a rebalance took away must not
        # keep its last lag here (an alert would see a lag nobody is working off).
        self.metrics.consumer_lag.clear()
        for name, lag in (body["lag"] or {}).items():
            if lag is not None:
                topic, _, partition = name.rpartition(":")
                self.metrics.consumer_lag.labels(topic, partition).set(lag)
        self.metrics.topic_lag.clear()  # likewise per topic: only the topics with a known lag here
        for topic, entry in body["topics"].items():
            if entry["lag"] is not None:
                self.metrics.topic_lag.labels(topic).set(entry["lag"])


def _storing_failure(state: str, live: WorkerSnapshot | None) -> tuple[str, float] | None:
    """(why, since when) while the running worker cannot store, read from its own snapshot.

    Read at every status/readiness call rather than at the once-a-second check, so /ready and
    /consumer say it as soon as the worker does; a worker that is stuck or crash looping keeps
    that (worse) state.
    """
    if state not in (ConsumerState.RUNNING, ConsumerState.STARTING) or live is None:
        return None
    if live.state != WorkerState.DB_UNAVAILABLE:
        return None
    return live.db_error or "storing failed", live.db_unavailable_since or time.time()
