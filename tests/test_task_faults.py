"""Misbehaving tasks: whatever a task raises or leaves behind, its run ends with a recorded outcome,
its worker returns to the pool and its lease is released, so that the task can run again at once."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from servicescheduler.scheduling import executor as executor_module
from servicescheduler.scheduling.executor import LEFTOVER_GRACE_SECONDS, Outcome, TaskExecutor, run_in_fresh_loop
from servicescheduler.scheduling.launcher import RunLauncher, new_run_id
from servicescheduler.scheduling.registry import TaskContext, TaskRegistry
from servicescheduler.scheduling.tracked import TrackedTask
from servicescheduler.scheduling.triggers import every
from servicescheduler.storage.records import RunRecord
from servicescheduler.support.exception_text import ERROR_TEXT_LIMIT, exception_text, traceback_text
from tests.conftest import AUTH, wait_until

HUGE = 10 * 1024 * 1024  # a 10 MB message


class Unprintable(ValueError):
    """An exception whose __str__ and __repr__ both raise."""

    def __str__(self) -> str:
        raise RuntimeError("no str for you")

    def __repr__(self) -> str:
        raise RuntimeError("no repr either")


class NotAnError(BaseException):
    """A BaseException subclass that is neither Exception, SystemExit nor KeyboardInterrupt."""


class RaisesSystemExitFromStr(Exception):
    def __str__(self) -> str:
        raise SystemExit(3)


def _raise_unprintable() -> None:
    raise Unprintable()


def _raise_base_exception() -> None:
    raise NotAnError("outside the Exception hierarchy")


def _raise_huge() -> None:
    raise ValueError("x" * HUGE)


def _raise_exit_from_str() -> None:
    raise RaisesSystemExitFromStr()


BODIES: dict[str, tuple[Callable[[], None], str]] = {
    # name → (body, what the error text starts with)
    "unprintable": (_raise_unprintable, "<unprintable Unprintable>"),
    "base_exception": (_raise_base_exception, "NotAnError: outside the Exception hierarchy"),
    "huge_message": (_raise_huge, "ValueError: xxx"),
    "exit_from_str": (_raise_exit_from_str, "<unprintable RaisesSystemExitFromStr>"),
}


def _as_async(body: Callable[[], None]) -> Callable[[], Any]:
    async def run() -> None:
        await asyncio.sleep(0)
        body()

    return run


def test_exception_text_never_raises_and_is_bounded() -> None:
    for body, starts in BODIES.values():
        try:
            body()
        except BaseException as exc:  # noqa: BLE001 - the point of the test
            text = exception_text(exc)
            assert text.startswith(starts), text
            assert len(text) <= ERROR_TEXT_LIMIT + 100
            assert len(traceback_text(exc)) <= 20_100


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("fault", sorted(BODIES))
def test_whatever_a_task_raises_its_run_ends_in_error_and_it_can_run_again(make_scheduler, kind, fault) -> None:
    body, starts = BODIES[fault]
    registry = TaskRegistry()
    registry.register("bad", body if kind == "sync" else _as_async(body), trigger=every(1).hours, enabled=False)
    scheduler = make_scheduler(registry, worker_threads=1)
    first = scheduler.trigger("bad")
    # Before: formatting the error raised inside the executor's handler, the run never ended and
    # the task stayed `running` (409 on POST /run, every later slot skipped) until shutdown.
    wait_until(lambda: not scheduler.is_running("bad"), timeout=10)
    last = scheduler.status("bad").as_dict()["last_run"]
    assert (last["run_id"], last["outcome"]) == (first, "error")
    assert last["error"].startswith(starts) and len(last["error"]) <= ERROR_TEXT_LIMIT + 100
    second = scheduler.trigger("bad")  # at once: no TaskBusy (HTTP 409)
    wait_until(lambda: not scheduler.is_running("bad"), timeout=10)
    assert scheduler.status("bad").as_dict()["last_run"]["run_id"] == second
    assert scheduler.status("bad").as_dict()["stats"]["failures"] == 2
    assert scheduler.wait_idle(10)
    from servicescheduler.storage.history import run_rows

    stored = {r["run_id"]: r for r in run_rows(scheduler.database, "bad", 10, None)}
    assert {stored[first]["outcome"], stored[second]["outcome"]} == {"error"}
    assert len(stored[first]["error"]) <= ERROR_TEXT_LIMIT + 100


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_over_http_in_a_cluster_the_lease_is_released_and_post_run_is_not_409(live_app, make_settings, kind) -> None:
    registry = TaskRegistry()
    registry.register(
        "bad", _raise_unprintable if kind == "sync" else _as_async(_raise_unprintable), trigger=every(1).hours
    )
    app = live_app(make_settings(cluster_enabled=True), registry)  # runs take a cluster lease
    # The start-up run raised already; before, its lease was never released: 409 until shutdown.
    wait_until(lambda: (app.client.get("/tasks/bad").json()["last_run"] or {}).get("outcome") == "error", timeout=10)
    answer = app.client.post("/tasks/bad/run", headers=AUTH)
    assert answer.status_code == 202, answer.text
    run_id = answer.json()["run_id"]
    wait_until(lambda: app.client.get("/tasks/bad").json()["last_run"]["run_id"] == run_id, timeout=10)
    last = app.client.get("/tasks/bad").json()["last_run"]
    assert (last["outcome"], last["error"]) == ("error", "<unprintable Unprintable>")
    assert app.client.post("/tasks/bad/run", headers=AUTH).status_code == 202


class _Gate:
    def __init__(self) -> None:
        self.released: list[str] = []

    def admit(self, task: str, run: RunRecord) -> Outcome | None:
        return None

    def release(self, task: str, run_id: str) -> None:
        self.released.append(run_id)


class _BrokenExecutor(TaskExecutor):
    """An executor whose invoke itself fails (a bug in it, or in what it calls)."""

    def invoke(self, spec: Any, context: TaskContext) -> Outcome:
        raise Unprintable()


def test_the_launcher_ends_the_run_and_releases_its_lease_even_when_the_executor_fails() -> None:
    registry = TaskRegistry()
    registry.register("job", lambda: None, trigger=every(1).hours)
    [spec] = list(registry)
    executor = _BrokenExecutor(1, 1)
    gate = _Gate()
    finished: list[tuple[str, Outcome]] = []
    done = threading.Event()

    def on_finished(task: TrackedTask, run: RunRecord, outcome: Outcome) -> None:
        finished.append((run.run_id, outcome))
        done.set()

    launcher = RunLauncher(executor, time.time, lambda task, run: None, on_finished, gate)
    run = RunRecord(new_run_id(), "job", "manual", None, time.time())
    try:
        launcher.launch(TrackedTask(spec, spec.trigger, True), run)
        assert done.wait(10), "the finished callback never ran"
    finally:
        executor.shutdown()
    [(run_id, outcome)] = finished
    assert run_id == run.run_id and outcome.outcome == "error"
    assert outcome.error == "the executor failed: <unprintable Unprintable>"
    assert gate.released == [run.run_id]


class _FailingGate(_Gate):
    def release(self, task: str, run_id: str) -> None:
        super().release(task, run_id)
        raise ConnectionError("database unreachable")


def test_a_failing_release_or_callback_neither_loses_the_outcome_nor_the_worker() -> None:
    registry = TaskRegistry()
    registry.register("job", lambda: None, trigger=every(1).hours)
    [spec] = list(registry)
    executor = TaskExecutor(1, 1)
    gate = _FailingGate()
    outcomes: list[str] = []

    def on_finished(task: TrackedTask, run: RunRecord, outcome: Outcome) -> None:
        outcomes.append(outcome.outcome)
        raise RuntimeError("a bug in the accounting")

    launcher = RunLauncher(executor, time.time, lambda task, run: None, on_finished, gate)
    try:
        for _ in range(2):  # the second run proves the only worker thread survived the first
            launcher.launch(TrackedTask(spec, spec.trigger, True), RunRecord(new_run_id(), "job", "manual", None, 0.0))
        wait_until(lambda: len(outcomes) == 2, timeout=10)
    finally:
        executor.shutdown()
    assert outcomes == ["success", "success"] and len(gate.released) == 2


# ----------------------------------------------------------------------------- async leftovers
async def _swallow_forever() -> None:
    while True:
        with contextlib.suppress(asyncio.CancelledError):  # refuses to die
            await asyncio.sleep(10)


async def _leaves_a_stubborn_task() -> None:
    asyncio.get_running_loop().create_task(_swallow_forever(), name="stubborn")
    await asyncio.sleep(0)


async def _leaves_a_stubborn_task_and_hangs() -> None:
    asyncio.get_running_loop().create_task(_swallow_forever(), name="stubborn")
    await asyncio.sleep(30)


class _Log:
    def __init__(self) -> None:
        self.warnings: list[tuple[str, dict[str, Any]]] = []

    def warning(self, event: str, **fields: Any) -> None:
        self.warnings.append((event, fields))


def test_leftovers_that_swallow_cancellation_are_abandoned_after_the_grace(monkeypatch) -> None:
    log = _Log()
    monkeypatch.setattr(executor_module, "log", log)
    started = time.monotonic()
    with pytest.raises(executor_module.LeftoverTasksAbandoned) as raised:
        run_in_fresh_loop(_leaves_a_stubborn_task, (), None, task="leaver")
    assert time.monotonic() - started < LEFTOVER_GRACE_SECONDS + 2
    assert not raised.value.timed_out
    assert raised.value.names == ["stubborn (_swallow_forever)"]
    [(event, fields)] = log.warnings
    assert event == "task_leftovers_abandoned" and fields["task"] == "leaver"
    assert fields["leftovers"] == ["stubborn (_swallow_forever)"]


@pytest.mark.slow  # seconds of real waiting (a process pool, a timeout): out of the fast tier
def test_a_run_that_swallows_its_own_timeout_is_abandoned_as_a_timeout(monkeypatch) -> None:
    monkeypatch.setattr(executor_module, "log", _Log())
    started = time.monotonic()
    with pytest.raises(executor_module.LeftoverTasksAbandoned) as raised:
        run_in_fresh_loop(_swallow_forever, (), 0.1, task="deaf")
    assert time.monotonic() - started < 0.1 + 2 * LEFTOVER_GRACE_SECONDS + 2
    assert raised.value.timed_out
    assert raised.value.names == ["deaf (_with_deadline)"]


@pytest.mark.parametrize(
    ("body", "timeout", "outcome", "text"),
    [
        (_leaves_a_stubborn_task, None, "error", "LeftoverTasksAbandoned: abandoned 1 leftover(s) that ignored"),
        (_leaves_a_stubborn_task_and_hangs, 0.2, "timeout", "cancelled after 0.2 s timeout; abandoned 1 leftover(s)"),
    ],
    ids=["returns", "times_out"],
)
def test_a_stubborn_leftover_ends_the_run_and_frees_the_only_worker(
    make_scheduler, monkeypatch, body, timeout, outcome, text
) -> None:
    log = _Log()
    monkeypatch.setattr(executor_module, "log", log)
    ran = threading.Event()
    registry = TaskRegistry()
    registry.register("leaver", body, trigger=every(1).hours, enabled=False, timeout=timeout)
    registry.register("next", ran.set, trigger=every(1).hours, enabled=False)
    scheduler = make_scheduler(registry, worker_threads=1)
    scheduler.trigger("leaver")
    # Before: the fresh loop's teardown waited for the stubborn task forever, holding the only
    # worker thread; this run of another task never started.
    scheduler.trigger("next")
    assert ran.wait(10), "the worker thread never came back to the pool"
    wait_until(lambda: not scheduler.is_running("leaver"), timeout=5)
    last = scheduler.status("leaver").as_dict()["last_run"]
    assert last["outcome"] == outcome
    assert last["error"].startswith(text) and "stubborn (_swallow_forever)" in last["error"]
    assert [(event, fields["task"]) for event, fields in log.warnings] == [("task_leftovers_abandoned", "leaver")]


def test_a_blocking_call_left_in_a_thread_does_not_hold_the_run(monkeypatch) -> None:
    log = _Log()
    monkeypatch.setattr(executor_module, "log", log)
    unblock = threading.Event()

    async def blocks_in_a_thread() -> None:
        await asyncio.to_thread(unblock.wait, 30)  # cancellable await, uncancellable thread

    started = time.monotonic()
    try:
        with pytest.raises(executor_module.LeftoverTasksAbandoned) as raised:
            run_in_fresh_loop(blocks_in_a_thread, (), 0.1, task="blocker")
        # Before: the teardown joined the default executor's thread, for as long as the call blocked.
        assert time.monotonic() - started < 0.1 + LEFTOVER_GRACE_SECONDS + 2
    finally:
        unblock.set()
    assert raised.value.timed_out
    assert raised.value.names == ["thread running Event.wait"]
    assert [fields["task"] for _, fields in log.warnings] == ["blocker"]


def test_a_run_that_cancels_itself_is_an_error_not_a_timeout() -> None:
    async def cancels_itself() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await asyncio.sleep(1)

    with pytest.raises(asyncio.CancelledError):
        run_in_fresh_loop(cancels_itself, (), None)


def test_threads_a_run_used_for_blocking_calls_end_with_it() -> None:
    async def uses_threads() -> int:
        values = await asyncio.gather(*(asyncio.to_thread(sum, [i, 1]) for i in range(4)))
        return sum(values)

    before = set(threading.enumerate())  # other tests' threads may come and go meanwhile
    for _ in range(20):
        assert run_in_fresh_loop(uses_threads, (), 5) == (False, 10)
        # Joined before the run returns.
        assert [t.name for t in set(threading.enumerate()) - before if t.name.startswith("task-async-thread")] == []
