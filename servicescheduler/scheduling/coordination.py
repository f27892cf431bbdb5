"""Coordinator: who may run a slot. One protocol, two implementations.

`LocalCoordinator` (CLUSTER_ENABLED=false): one process alone. Every claim wins at once, in
memory, with no I/O: the scheduler's own lock is the only guard needed.

`DatabaseCoordinator`: this replica's side of sharing one schedule with other replicas on one
database. Every replica is equal and dispatches every slot. Before a scheduled run starts (on its worker,
during the early hand-off, so the round trip is not added to start lateness) the replica claims
the slot; only the winner goes on, the others drop the slot silently. The winner then takes the
task's running lease: if another replica's run is still in progress the winner records the slot
`skipped` (once, cluster-wide); if that lease has expired (its replica died) the winner records
the dead run `interrupted` and runs. Manual runs take the lease first (409 anywhere in the
cluster); event-requested runs that find the lease taken ask its holder for one follow-up run.
"""

from __future__ import annotations

import math
import os
import socket
import threading
from collections.abc import Callable
from typing import Any, Protocol

from sqlalchemy.orm import Session

from servicescheduler.logs import get_logger
from servicescheduler.scheduling.errors import CoordinationUnavailable, TaskBusy
from servicescheduler.scheduling.executor import Outcome
from servicescheduler.storage.claims import Lease, claim_slot, interrupt, release_lease, request_rerun, try_lease
from servicescheduler.storage.cluster import describe, replicas
from servicescheduler.storage.control import current_version
from servicescheduler.storage.db import Database
from servicescheduler.storage.records import RunRecord
from servicescheduler.storage.task_state import TaskStateStore
from servicescheduler.vocabulary import RunOutcome

log = get_logger(__name__)

# The verdict "not this replica's run" (another replica won the slot, or an event request was
# handed to the run in progress): not recorded, not counted. Not an outcome: compared by identity.
UNCLAIMED = Outcome(RunOutcome.SKIPPED, "another replica claimed this run")
SOFTWARE_VERSION = "1.0.0"
# Runs are handed to a worker this long before they are due; the worker waits for the exact
# time. The thread hand-off and the OS's late wake-ups (~0.25 ms each here) are thereby
# hidden instead of added to every start.
DISPATCH_LEAD_SECONDS = 0.002
# In a cluster the worker also claims the slot (one database transaction, ~3 ms on PostgreSQL
# here, up to ~100 ms under load) during the hand-off: hand runs over earlier so that round trip
# is hidden too. The price: a run still going this close to its task's next slot skips that slot.
CLUSTER_DISPATCH_LEAD_SECONDS = 0.1

Offload = Callable[..., Any]  # runs a function off the scheduler's loop: TaskExecutor.submit
# {task: (enabled, interval override, grid period)} as a first start would persist them.
InitialStates = Callable[[], dict[str, tuple[bool, int | None, float | None]]]


class Coordinator(Protocol):
    """Who may run a slot: what the scheduler asks before, around and after each run.

    Called from the loop thread (dispatch, never blocking on I/O), from request threads
    (manual runs) and from worker threads (admit, release).
    """

    @property
    def replica_id(self) -> str | None:
        """Recorded on each run; None for a process alone."""
        ...

    @property
    def clustered(self) -> bool:
        """False: this process works alone (GET /cluster answers 404)."""
        ...

    @property
    def dispatch_lead_seconds(self) -> float:
        """How early runs are handed to a worker (hides the claim's round trip)."""
        ...

    @property
    def claims_at_dispatch(self) -> bool:
        """True when every claim wins at once: a run is claimed as the loop dispatches it, so its
        start is recorded then (a run still queued for a worker leaves its row). False: it is
        claimed on its worker (admit) and its start recorded only once won (a loser leaves none)."""
        ...

    def live_replicas(self) -> frozenset[str]:
        """Other replicas whose `running` rows are not orphans (start-up recovery spares them)."""
        ...

    def seed(self, states: TaskStateStore, initial: InitialStates, now: float) -> None:
        """Before the first load: creates the task_state rows every replica plans from."""
        ...

    def control_version(self) -> int:
        """The cluster's current control version (0 alone: no other replica changes anything)."""
        ...

    def describe(self) -> dict[str, object]:
        """The GET /cluster view."""
        ...

    def overdue_slot(self, anchor: float, period: float, now: float) -> float:
        """When an overdue task's run due "now" is scheduled for."""
        ...

    def admit(self, task: str, run: RunRecord) -> Outcome | None:
        """Worker thread, before `run` starts: None to go on, else the outcome to report instead
        (UNCLAIMED: not this replica's run)."""
        ...

    def release(self, task: str, run_id: str) -> None:
        """Worker thread, after a run: gives its claim back."""
        ...

    def claim_unstarted(self, task: str, due: float, record: Callable[[], None], offload: Offload) -> None:
        """Loop thread: a slot that will not run (skipped or missed) is recorded once, by `record`,
        if this replica claims it; a claim that needs I/O is made through `offload`."""
        ...

    def acquire(self, task: str, run_id: str, cause: str) -> None:
        """Request thread, before a manual run: raises TaskBusy while a run is in progress elsewhere."""
        ...

    def abandon(self, task: str, run_id: str) -> None:
        """Gives back what acquire() took, for a run that did not start after all."""
        ...

    def take_rerun(self, task: str) -> bool:
        """True once if another replica asked for a follow-up run of `task` while ours ran."""
        ...


class LocalCoordinator:
    """One process alone (CLUSTER_ENABLED=false): every claim wins, nothing is shared or stored.

    The scheduler's lock and its `TrackedTask.running` guard already keep one run per task.
    """

    replica_id: str | None = None
    clustered = False
    dispatch_lead_seconds = DISPATCH_LEAD_SECONDS
    claims_at_dispatch = True

    def live_replicas(self) -> frozenset[str]:
        """None: every `running` row at start-up is this process's predecessor's."""
        return frozenset()

    def seed(self, states: TaskStateStore, initial: InitialStates, now: float) -> None:
        """Nothing to agree on: first-seen tasks are created after they are planned."""

    def control_version(self) -> int:
        """0: no other replica changes anything."""
        return 0

    def describe(self) -> dict[str, object]:
        """This process alone."""
        return {"self": None, "replicas": []}

    def overdue_slot(self, anchor: float, period: float, now: float) -> float:
        """Now: no other replica has to name the same slot."""
        return now

    def admit(self, task: str, run: RunRecord) -> Outcome | None:
        """Every run goes on."""
        return None

    def release(self, task: str, run_id: str) -> None:
        """Nothing was held."""

    def claim_unstarted(self, task: str, due: float, record: Callable[[], None], offload: Offload) -> None:
        """Recorded at once, on the calling thread (no I/O to take off the loop)."""
        record()

    def acquire(self, task: str, run_id: str, cause: str) -> None:
        """Nothing to take: the scheduler's own running check is the guard."""

    def abandon(self, task: str, run_id: str) -> None:
        """Nothing was taken."""

    def take_rerun(self, task: str) -> bool:
        """Never: follow-ups are requested in memory (TrackedTask.rerun_requested)."""
        return False


def new_replica_id() -> str:
    """A replica id that is unique across hosts and restarts: host, pid and a random suffix."""
    return f"{socket.gethostname()[:32]}-{os.getpid()}-{os.urandom(3).hex()}"


def _process_exists(pid: int) -> bool:
    """True unless no process has this id on this host (a reused id counts as alive: the safe side)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def grid_slot(anchor: float, period: float, now: float) -> float:
    """The latest slot at or before `now` on the grid through `anchor`: every replica names the
    same slot for an overdue task, whatever its own start time."""
    if period <= 0 or now < anchor:
        return now
    return anchor + math.floor((now - anchor) / period) * period


class DatabaseCoordinator:
    """Claims slots and holds running leases for this replica. Thread-safe; does database I/O."""

    clustered = True
    dispatch_lead_seconds = CLUSTER_DISPATCH_LEAD_SECONDS
    claims_at_dispatch = False

    def __init__(
        self, database: Database, *, ttl_seconds: float, clock: Callable[[], float], replica_id: str | None = None
    ) -> None:
        self.database = database
        self.replica_id = replica_id or new_replica_id()
        self.ttl_seconds = ttl_seconds
        self.started_at = clock()
        self._clock = clock
        self._lock = threading.Lock()
        self._held: dict[str, str] = {}  # task → run id whose lease this replica holds
        self._unreleased: dict[str, str] = {}  # leases whose release failed: retried by the heartbeat
        self._reruns: set[str] = set()

    def live_replicas(self) -> frozenset[str]:
        """Ids of the other replicas that may still be running (their running rows are not orphans):
        seen within the TTL, unless on this host with a process id that no longer exists (a
        restart after kill -9 then closes its predecessor's runs at once, not after the TTL)."""
        horizon = self._clock() - self.ttl_seconds
        with self.database.read_session() as session:
            seen = [r for r in replicas(session) if r.last_seen_at >= horizon and r.id != self.replica_id]
        here = socket.gethostname()
        return frozenset(r.id for r in seen if r.host != here or _process_exists(r.pid))

    def describe(self) -> dict[str, object]:
        """The GET /cluster view: every known replica, alive or not, with its runs and partitions."""
        with self.database.read_session() as session:
            return describe(session, self.replica_id, self.ttl_seconds, self._clock())

    def control_version(self) -> int:
        """The cluster's current control version (storage/control.py)."""
        with self.database.read_session() as session:
            return current_version(session)

    def seed(self, states: TaskStateStore, initial: InitialStates, now: float) -> None:
        """Every replica plans from the same rows: missing ones are created before any is loaded."""
        states.seed(initial(), now)

    def overdue_slot(self, anchor: float, period: float, now: float) -> float:
        """The latest grid slot, so that every replica claims the same slot."""
        return grid_slot(anchor, period, now)

    # ------------------------------------------------------------------ runs
    def admit(self, task: str, run: RunRecord) -> Outcome | None:
        """Worker thread, before `run` starts: None to go on, else the outcome to report instead."""
        with self._lock:
            if self._held.get(task) == run.run_id:
                return None  # a manual run: trigger() took the lease already
        try:
            with self.database.session() as session:
                if run.scheduled_for is not None and not claim_slot(
                    session, task, run.scheduled_for, self.replica_id, self._clock()
                ):
                    return UNCLAIMED
                holder = self._take(session, task, run.run_id, run.cause, run.scheduled_for)
                if holder is None:
                    return None
                if run.scheduled_for is None:  # event request: coalesce onto the run in progress
                    request_rerun(session, task)
                    return UNCLAIMED
        except Exception as exc:
            self._forget(task, run.run_id)  # the transaction did not commit: no lease is held
            log.error(
                "slot_claim_failed",
                task=task,
                run_id=run.run_id,
                replica=self.replica_id,
                error=f"{type(exc).__name__}: {exc}",
            )
            return Outcome(RunOutcome.MISSED, f"could not claim the slot: {type(exc).__name__}")
        return Outcome(RunOutcome.SKIPPED, f"previous run {holder.run_id} still running on replica {holder.owner}")

    def claim_unstarted(self, task: str, due: float, record: Callable[[], None], offload: Offload) -> None:
        """Only the replica that claims the slot records it; the claim is I/O, made off the loop."""
        offload(self._record_if_claimed, task, due, record)

    def _record_if_claimed(self, task: str, due: float, record: Callable[[], None]) -> None:
        if self.claim_only(task, due):
            record()

    def claim_only(self, task: str, scheduled_for: float) -> bool:
        """Claims a slot this replica will not run (to record it skipped or missed once)."""
        try:
            with self.database.session() as session:
                return claim_slot(session, task, scheduled_for, self.replica_id, self._clock())
        except Exception as exc:
            log.error("slot_claim_failed", task=task, replica=self.replica_id, error=f"{type(exc).__name__}: {exc}")
            return False

    def acquire(self, task: str, run_id: str, cause: str) -> None:
        """Takes `task`'s lease for a manual run; raises TaskBusy while a run is in progress anywhere
        (CoordinationUnavailable when the database does not answer)."""
        try:
            with self.database.session() as session:
                holder = self._take(session, task, run_id, cause, None)
        except Exception as exc:
            self._forget(task, run_id)
            log.error("lease_acquire_failed", task=task, replica=self.replica_id, error=f"{type(exc).__name__}: {exc}")
            raise CoordinationUnavailable(
                f"cannot start {task!r}: the database that coordinates the replicas is unreachable "
                f"({type(exc).__name__})"
            ) from None
        if holder is not None:
            raise TaskBusy(f"task {task!r} is running on replica {holder.owner} (run {holder.run_id})")

    def abandon(self, task: str, run_id: str) -> None:
        """Gives back a lease taken for a run that was not started after all."""
        self.release(task, run_id)

    def release(self, task: str, run_id: str) -> None:
        """Worker thread, after a run: removes its lease (a failure is retried by the heartbeat)."""
        with self._lock:
            if self._held.get(task) != run_id:
                return
            del self._held[task]
        try:
            with self.database.session() as session:
                if release_lease(session, task, run_id):
                    with self._lock:
                        self._reruns.add(task)
        except Exception as exc:
            log.error("lease_release_failed", task=task, run_id=run_id, error=f"{type(exc).__name__}: {exc}")
            with self._lock:
                self._unreleased[task] = run_id

    def _forget(self, task: str, run_id: str) -> None:
        with self._lock:
            if self._held.get(task) == run_id:
                del self._held[task]

    def take_rerun(self, task: str) -> bool:
        """True once if another replica asked for a follow-up run of `task` while ours ran."""
        with self._lock:
            if task in self._reruns:
                self._reruns.discard(task)
                return True
            return False

    def _take(self, session: Session, task: str, run_id: str, cause: str, scheduled_for: float | None) -> Lease | None:
        """Takes the lease (taking over an expired one); returns the live holder when it cannot."""
        now = self._clock()
        lease = Lease(task, run_id, self.replica_id, cause, scheduled_for, now, now + self.ttl_seconds)
        holder = try_lease(session, lease)
        if holder is not None and holder.expires_at < now and holder.owner != self.replica_id:
            if interrupt(session, holder, now, interrupted_reason(holder)):
                log_interrupted(holder, self.replica_id)
            holder = try_lease(session, lease)
        if holder is None:
            with self._lock:
                self._held[task] = run_id
        return holder

    def held(self) -> dict[str, str]:
        """{task: run id} of the leases this replica holds for runs in progress."""
        with self._lock:
            return dict(self._held)

    def unreleased(self) -> dict[str, str]:
        """{task: run id} of leases of finished runs whose release failed."""
        with self._lock:
            return dict(self._unreleased)

    def released(self, task: str, run_id: str) -> None:
        """The heartbeat released a lease whose first release failed."""
        with self._lock:
            if self._unreleased.get(task) == run_id:
                del self._unreleased[task]


def interrupted_reason(lease: Lease) -> str:
    """The error text of a run whose replica died."""
    return f"replica {lease.owner} stopped renewing its lease (the process died or lost the database)"


def log_interrupted(lease: Lease, by: str) -> None:
    """The one `task_run` line of a run recorded interrupted by another replica."""
    log.warning(
        "task_run",
        task=lease.task,
        run_id=lease.run_id,
        trigger=lease.trigger,
        outcome=RunOutcome.INTERRUPTED,
        replica=lease.owner,
        recorded_by=by,
        error=interrupted_reason(lease),
    )
