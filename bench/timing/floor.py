"""The lateness floor of benchmark 1 on this machine: Python threads woken for the same instants
with no scheduler at all (`python -m bench.timing.floor --threads 4 --seconds 30`).

Each thread wakes for every whole second the way a task worker does (sleeps until 0.3 ms before,
then yield-spins; `--wait sleep`: one plain sleep; `--wait slack`: a plain sleep with the thread's
timer slack at 1 ns). One thread shows what the OS gives a sleeper; four threads due at one instant
(benchmark 1's four tasks) show what the hand-offs of the GIL between them add. Prints JSON; as a
call for `bench.compare`: `bench.timing.floor:floor(4, 30)`.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import threading
import time

from bench.stats import summarize

PR_SET_TIMERSLACK = 29
SPIN_SECONDS = 0.0003  # as servicescheduler.scheduling.launcher


def _wait_for(due: float, wait: str) -> None:
    remaining = due - time.time()
    if wait != "spin":
        if remaining > 0:
            time.sleep(remaining)
        return
    if remaining > SPIN_SECONDS:
        time.sleep(remaining - SPIN_SECONDS)
    while time.time() < due:
        time.sleep(0)


def floor(threads: int, seconds: float, wait: str = "spin") -> dict[str, object]:
    """Lateness (ms) of `threads` threads each woken for the same whole seconds during `seconds`."""
    lateness: list[float] = []
    lock = threading.Lock()
    first = int(time.time()) + 1

    def worker() -> None:
        if wait == "slack":
            ctypes.CDLL(None).prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0)
        due = float(first)
        while due < first + seconds:
            _wait_for(due, wait)
            late = time.time() - due
            with lock:
                lateness.append(late)
            due += 1

    pool = [threading.Thread(target=worker, name=f"floor-{i}") for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(seconds + 5)
    return {"threads": threads, "wait": wait, "lateness_ms": summarize(lateness, 1000)}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.timing.floor", description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--wait", choices=("spin", "sleep", "slack"), default="spin")
    args = parser.parse_args()
    print(json.dumps(floor(args.threads, args.seconds, args.wait)))


if __name__ == "__main__":
    main()
