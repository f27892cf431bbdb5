"""Where a run happens: a bounded thread pool, a process pool for CPU-bound tasks, and a fresh
event loop per run for `async def` tasks. Knows nothing about *when*: the scheduler decides that.
"""

from __future__ import annotations

import asyncio
import ctypes
import multiprocessing
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from servicescheduler.scheduling.registry import TaskContext, TaskSpec
from servicescheduler.vocabulary import RunOutcome

PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Outcome:
    """How one invocation ended: `success`, `error`, `timeout` (or `interrupted` at shutdown), with the error text."""

    outcome: RunOutcome
    error: str | None = None
    traceback: str | None = None


def _process_worker_init(parent_pid: int) -> None:
    """Makes a process-pool worker die with the server, even if the server is SIGKILLed."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
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


def run_in_fresh_loop(func: Callable[..., Any], args: tuple[Any, ...], timeout: float | None) -> tuple[bool, Any]:
    """Runs `func(*args)` (a coroutine function) in a new event loop, fully torn down after.

    Returns (timed_out, result). Pending tasks are cancelled, async generators and the default
    executor shut down and the loop closed, so no file descriptor outlives the run.
    """
    loop = asyncio.new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(_with_deadline(func(*args), timeout))
    finally:
        try:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


class TaskExecutor:
    """Runs task invocations on a bounded thread pool (and a process pool when asked)."""

    def __init__(self, worker_threads: int, process_workers: int) -> None:
        self._threads = ThreadPoolExecutor(max_workers=worker_threads, thread_name_prefix="task-worker")
        self._process_workers = process_workers
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
                timed_out, _ = run_in_fresh_loop(spec.func, args, spec.timeout_seconds)
                if timed_out:
                    return Outcome(RunOutcome.TIMEOUT, f"cancelled after {spec.timeout_seconds:g} s timeout")
            else:
                spec.func(context) if spec.takes_context else spec.func()
            return Outcome(RunOutcome.SUCCESS)
        except BaseException as exc:  # even SystemExit: a task must never take its worker down
            return Outcome(RunOutcome.ERROR, f"{type(exc).__name__}: {exc}", traceback.format_exc())

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
            return Outcome(RunOutcome.ERROR, f"worker process died: {exc}", traceback.format_exc())
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
                    initargs=(os.getpid(),),
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
