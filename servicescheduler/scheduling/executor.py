"""Where a run happens: a bounded thread pool, a process pool for CPU-bound tasks, and a fresh
event loop per run for `async def` tasks. Knows nothing about *when*: the scheduler decides that.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

from servicescheduler.logs import get_logger
from servicescheduler.scheduling.registry import TaskContext, TaskSpec
from servicescheduler.support.exception_text import exception_text, traceback_text
from servicescheduler.vocabulary import RunOutcome

log = get_logger(__name__)

PR_SET_PDEATHSIG = 1
# How long what an async run leaves behind gets to end once cancelled, before it is abandoned.
LEFTOVER_GRACE_SECONDS = 1.0


@dataclass(frozen=True)
class Outcome:
    """How one invocation ended: `success`, `error`, `timeout` (or `interrupted` at shutdown), with the error text."""

    outcome: RunOutcome
    error: str | None = None
    traceback: str | None = None
    # What the run raised, for the run's span (record_exception); not part of the outcome's value.
    exception: BaseException | None = field(default=None, compare=False, repr=False)


def _process_worker_init(parent_pid: int, nice: int = 0) -> None:
    """Makes a process-pool worker die with the server, even if the server is SIGKILLed, and
    lowers its CPU priority by `nice` (PROCESS_POOL_NICE)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    if nice:
        # A CPU-bound task takes a whole core; at the server's priority it competes with the
        # request and loop threads for it (benchmark 6). Raising niceness needs no privilege.
        os.nice(nice)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass

    # PDEATHSIG fires when the *thread* that forked us exits, and not at all on some systems;
    # watching the parent pid covers every case.
    def watch_parent() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch_parent, name="parent-watch", daemon=True).start()


async def _with_deadline(coro: Any, timeout: float | None) -> tuple[bool, Any]:
    """Awaits `coro`; returns (timed_out, result). Only our own deadline counts as a timeout."""
    if timeout is None:
        return False, await coro
    try:
        async with asyncio.timeout(timeout) as deadline:
            return False, await coro
    except TimeoutError:
        if deadline.expired():
            return True, None
        raise


class LeftoverTasksAbandoned(RuntimeError):
    """What an async run left behind (tasks, a blocking call in a thread) ignored its cancellation
    for LEFTOVER_GRACE_SECONDS: the loop was closed under it. `timed_out`: the run itself was past
    its timeout."""

    def __init__(self, names: list[str], timed_out: bool) -> None:
        super().__init__(
            f"abandoned {len(names)} leftover(s) that ignored cancellation for "
            f"{LEFTOVER_GRACE_SECONDS:g} s: {', '.join(names)}"
        )
        self.names = names
        self.timed_out = timed_out


def _task_name(task: asyncio.Task[Any]) -> str:
    """The task's name and its coroutine's qualified name: `Task-7` alone says nothing."""
    coro = task.get_coro()
    return f"{task.get_name()} ({getattr(coro, '__qualname__', type(coro).__name__)})"


def _run_bounded(loop: asyncio.AbstractEventLoop, awaitable: asyncio.Future[Any], seconds: float | None) -> bool:
    """Runs `loop` until `awaitable` is done or `seconds` have passed; True when it is done. What
    it raised stays in it (read with .result()). A timer that stops the loop, rather than
    asyncio.wait/wait_for: this is on the path of every async run, and costs one timer handle."""
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        loop.stop()

    guard = None if seconds is None else loop.call_later(seconds, expire)
    try:
        loop.run_until_complete(awaitable)
    except BaseException:
        if not awaitable.done() and not expired:
            raise  # not the awaitable's outcome: the loop itself failed, or the run stopped it
    finally:
        if guard is not None:
            guard.cancel()
    return awaitable.done()


class _RunThreads(ThreadPoolExecutor):
    """The default executor of one async run (asyncio.to_thread, run_in_executor), whose pending
    calls the teardown can see: asyncio's own shutdown_default_executor joins its threads without
    a limit (3.11), and a blocking call cannot be cancelled.

    A ThreadPoolExecutor to asyncio (set_default_executor insists on one) that makes its real
    pool on first use: most runs never use it, and making one costs ~20 µs, a quarter of the
    overhead of an async run (bench/asyncloop.py)."""

    def __init__(self) -> None:  # no super().__init__(): every call goes to self._pool
        self._pool: ThreadPoolExecutor | None = None
        self._calls: dict[Future[Any], str] = {}
        self._calls_lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        with self._calls_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(thread_name_prefix="task-async-thread")
            future = self._pool.submit(fn, *args, **kwargs)
            self._calls[future] = _callable_name(fn, args)
        future.add_done_callback(self._forget)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._calls_lock:
            pool = self._pool
        if pool is not None:
            pool.shutdown(wait=wait, cancel_futures=cancel_futures)

    def _forget(self, future: Future[Any]) -> None:
        with self._calls_lock:
            self._calls.pop(future, None)

    def stop(self, grace: float) -> list[str]:
        """Cancels queued calls and waits up to `grace` for running ones; returns those still
        running (their threads are left to finish on their own)."""
        with self._calls_lock:
            if self._pool is None:
                return []
            calls = dict(self._calls)
        self.shutdown(wait=False, cancel_futures=True)
        _, running = wait_futures(calls, timeout=grace)
        if not running:
            self.shutdown(wait=True)  # idle threads only, which exit at once: none outlives the run
        return sorted(f"thread running {calls[future]}" for future in running)


def _callable_name(fn: Callable[..., Any], args: tuple[Any, ...]) -> str:
    # asyncio.to_thread submits functools.partial(context.run, func, *args): name func.
    if isinstance(fn, functools.partial) and fn.args and callable(fn.args[0]):
        fn = fn.args[0]
    return _qualname(fn)


def _teardown(loop: asyncio.AbstractEventLoop, threads: _RunThreads) -> list[str]:
    """Cancels what is left on `loop`, shuts down its async generators and its default executor,
    each step bounded by LEFTOVER_GRACE_SECONDS; returns what refused to end (to be abandoned)."""
    leftovers = asyncio.all_tasks(loop)
    for leftover in leftovers:
        leftover.cancel()
    abandoned: list[str] = []
    if leftovers:
        _run_bounded(loop, asyncio.gather(*leftovers, return_exceptions=True), LEFTOVER_GRACE_SECONDS)
        abandoned = sorted(_task_name(t) for t in leftovers if not t.done())
    if not _run_bounded(loop, loop.create_task(loop.shutdown_asyncgens()), LEFTOVER_GRACE_SECONDS):
        abandoned.append("async generators")
    return abandoned + threads.stop(LEFTOVER_GRACE_SECONDS)


def run_in_fresh_loop(
    func: Callable[..., Any], args: tuple[Any, ...], timeout: float | None, *, task: str | None = None
) -> tuple[bool, Any]:
    """Runs `func(*args)` (a coroutine function) in a new event loop, fully torn down after.

    Returns (timed_out, result); raises what the coroutine raised. Pending tasks are cancelled,
    async generators and the default executor shut down and the loop closed, so no file
    descriptor outlives the run. Teardown is bounded: what ignores its cancellation for
    LEFTOVER_GRACE_SECONDS (the run itself past its timeout, or a task it left behind) is
    abandoned with the loop, logged (`task_leftovers_abandoned`) and reported by raising
    LeftoverTasksAbandoned, so that the worker thread always returns to the pool.
    """
    name = task or _qualname(func)
    loop = asyncio.new_event_loop()
    threads = _RunThreads()  # starts no thread until the run uses it
    loop.set_default_executor(threads)
    abandoned: list[str] = []
    ended = False
    try:
        asyncio.set_event_loop(loop)
        main = loop.create_task(_with_deadline(func(*args), timeout), name=name)
        # The deadline cancels the run; a run that swallows that cancellation gets the grace, then
        # is cancelled again with the leftovers, and abandoned with them if it still goes on.
        ended = _run_bounded(loop, main, None if timeout is None else timeout + LEFTOVER_GRACE_SECONDS)
    finally:
        try:
            abandoned = _teardown(loop, threads)
        finally:
            asyncio.set_event_loop(None)
            loop.close()
    if abandoned:
        for leftover in asyncio.all_tasks(loop):
            # Reported here, once: not again as "Task was destroyed but it is pending!" when the
            # garbage collector finds it (asyncio's own switch for that message).
            leftover._log_destroy_pending = False  # type: ignore[attr-defined]
        log.warning(
            "task_leftovers_abandoned",
            task=name,
            leftovers=abandoned,
            grace_seconds=LEFTOVER_GRACE_SECONDS,
            note="they ignored their cancellation: the run's event loop was closed under them",
        )
    if not ended:  # past its deadline and its grace: cancelled again (and maybe abandoned) above
        if abandoned:
            raise LeftoverTasksAbandoned(abandoned, timed_out=True)
        return True, None
    if main.cancelled() or main.exception() is not None or not abandoned:
        return main.result()  # re-raises what the run raised (CancelledError if it cancelled itself)
    raise LeftoverTasksAbandoned(abandoned, timed_out=main.result()[0])


def _qualname(func: Callable[..., Any]) -> str:
    return str(getattr(func, "__qualname__", type(func).__name__))


class TaskExecutor:
    """Runs task invocations on a bounded thread pool (and a process pool when asked)."""

    def __init__(self, worker_threads: int, process_workers: int, process_nice: int = 0) -> None:
        self._threads = ThreadPoolExecutor(max_workers=worker_threads, thread_name_prefix="task-worker")
        self._process_workers = process_workers
        self._process_nice = process_nice
        self._processes: ProcessPoolExecutor | None = None
        self._process_lock = threading.Lock()
        self._closing = False

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Queues `fn(*args)` on the worker threads; returns its Future."""
        return self._threads.submit(fn, *args)

    def invoke(self, spec: TaskSpec, context: TaskContext) -> Outcome:
        """Runs one invocation of `spec` in the calling (worker) thread; never raises."""
        try:
            if spec.executor == "process":
                return self._invoke_in_process(spec)
            if spec.is_async:
                args = (context,) if spec.takes_context else ()
                timed_out, _ = run_in_fresh_loop(spec.func, args, spec.timeout_seconds, task=spec.name)
                if timed_out:
                    return Outcome(RunOutcome.TIMEOUT, f"cancelled after {spec.timeout_seconds:g} s timeout")
            else:
                spec.func(context) if spec.takes_context else spec.func()
            return Outcome(RunOutcome.SUCCESS)
        except LeftoverTasksAbandoned as exc:
            if exc.timed_out:
                return Outcome(RunOutcome.TIMEOUT, f"cancelled after {spec.timeout_seconds:g} s timeout; {exc}")
            return Outcome(RunOutcome.ERROR, exception_text(exc))
        except BaseException as exc:  # even SystemExit: a task must never take its worker down
            # The text is built by helpers that never raise: a task's exception may refuse str().
            return Outcome(RunOutcome.ERROR, exception_text(exc), traceback_text(exc), exception=exc)

    def _invoke_in_process(self, spec: TaskSpec) -> Outcome:
        pool = self._process_pool()
        try:
            pool.submit(spec.func).result()
        except BrokenProcessPool as exc:
            if self._closing:
                return Outcome(RunOutcome.INTERRUPTED, "process worker terminated by the shutdown")
            # A worker died (OOM killer, kill -9): concurrent.futures marks the whole pool broken
            # for good. Replace it, so that later process runs work again.
            self._discard_broken(pool)
            return Outcome(RunOutcome.ERROR, f"worker process died: {exception_text(exc)}", traceback_text(exc))
        return Outcome(RunOutcome.SUCCESS)

    def _discard_broken(self, pool: ProcessPoolExecutor) -> None:
        with self._process_lock:
            if self._processes is not pool:
                return  # another run replaced it already
            self._processes = None
        pool.shutdown(wait=False, cancel_futures=True)

    def _process_pool(self) -> ProcessPoolExecutor:
        with self._process_lock:
            if self._processes is None:
                # spawn, not fork: forking a multi-threaded server copies locks held by other threads.
                self._processes = ProcessPoolExecutor(
                    max_workers=self._process_workers,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_process_worker_init,
                    initargs=(os.getpid(), self._process_nice),
                )
            return self._processes

    def child_pids(self) -> list[int]:
        """PIDs of live process-pool workers (empty when the pool was never used)."""
        pool = self._processes
        if pool is None:
            return []
        # ProcessPoolExecutor has no public accessor for its workers; _processes is stable since 3.2.
        return [p.pid for p in list(getattr(pool, "_processes", {}).values()) if p.is_alive()]

    def shutdown(self) -> None:
        """Stops accepting work, cancels queued runs and terminates process workers."""
        self._closing = True
        self._threads.shutdown(wait=False, cancel_futures=True)
        with self._process_lock:
            pool, self._processes = self._processes, None
        if pool is None:
            return
        workers = list(getattr(pool, "_processes", {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in workers:
            if process.is_alive():
                process.terminate()
        for process in workers:
            process.join(timeout=2)
            if process.is_alive():
                process.kill()
                process.join(timeout=1)
