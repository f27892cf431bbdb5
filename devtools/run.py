"""``make run``: start a dev Kafka broker if needed, then uvicorn; clean up after.

Environment: HOST (127.0.0.1), PORT (8000), KAFKA_BOOTSTRAP_SERVERS (unset: start
Tansu on 127.0.0.1:9092), KAFKA_ENABLED (false/0: no broker), KAFKA_TOPICS
(comma list, "events"), KAFKA_DLQ_TOPIC (also created when set).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from devtools.serve import uvicorn_command
from devtools.tansu import BrokerError, TansuBroker, die_with_parent, port_in_use

REPO_ROOT = Path(__file__).resolve().parents[1]
DEV_BROKER_PORT = 9092


def log(message: str) -> None:
    """Print one launcher step, prefixed so it stands out from uvicorn's lines."""
    print(f"devtools.run: {message}", file=sys.stderr, flush=True)


def kafka_enabled(env: dict[str, str]) -> bool:
    """Return False when KAFKA_ENABLED says false/0/no/off, True otherwise."""
    return env.get("KAFKA_ENABLED", "true").strip().lower() not in {"false", "0", "no", "off"}


def wanted_topics(env: dict[str, str]) -> list[str]:
    """Return the topics to create: KAFKA_TOPICS (default "events") plus KAFKA_DLQ_TOPIC."""
    topics = [t.strip() for t in env.get("KAFKA_TOPICS", "events").split(",") if t.strip()]
    dlq = env.get("KAFKA_DLQ_TOPIC", "").strip()
    if dlq and dlq not in topics:
        topics.append(dlq)
    return topics


def start_dev_broker(env: dict[str, str]) -> TansuBroker:
    """Start Tansu on 127.0.0.1:9092 with the wanted topics; return it.

    Raises BrokerError with a hint when the port is already taken.
    """
    if port_in_use("127.0.0.1", DEV_BROKER_PORT):
        raise BrokerError(
            f"127.0.0.1:{DEV_BROKER_PORT} is already in use; to use that broker run "
            f"`make run KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:{DEV_BROKER_PORT}` "
            "(or KAFKA_ENABLED=false to run without Kafka)"
        )
    log_path = REPO_ROOT / "data" / "tansu.log"
    broker = TansuBroker(port=DEV_BROKER_PORT, log_path=log_path).start()
    log(f"Tansu broker on {broker.bootstrap} (log: {log_path.relative_to(REPO_ROOT)})")
    topics = wanted_topics(env)
    broker.create_topics(topics, partitions=3)
    log(f"topics ready: {', '.join(topics)}")
    return broker


def run_uvicorn(env: dict[str, str], host: str, port: str) -> int:
    """Run uvicorn as a child, forwarding SIGINT/SIGTERM to it; return its exit code."""
    cmd = uvicorn_command(port, host=host)
    log("starting " + " ".join(cmd[1:]))
    # Own process group: a terminal Ctrl-C then reaches uvicorn once (via us), not
    # twice, which uvicorn would take as "force exit".
    child = subprocess.Popen(cmd, env=env, cwd=REPO_ROOT, process_group=0, preexec_fn=die_with_parent(signal.SIGTERM))

    last: dict[int, float] = {}

    def forward(signum: int, _frame: FrameType | None) -> None:
        # One event can reach us twice (e.g. sent to us and to our group); uvicorn
        # treats a second SIGINT as "force exit", so drop repeats within a second.
        now = time.monotonic()
        if now - last.get(signum, -10.0) < 1.0:
            return
        last[signum] = now
        log(f"got {signal.Signals(signum).name}, stopping uvicorn")
        if child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    code = child.wait()
    log(f"uvicorn exited with code {code}")
    if code in (-signal.SIGINT, -signal.SIGTERM) and last:
        # uvicorn re-raises the signal it shut down on; a stop we asked for is a clean exit.
        return 0
    return 128 - code if code < 0 else code


def main() -> int:
    """Run the launcher; return the process exit code (uvicorn's, or 1 on set-up failure)."""
    env = dict(os.environ)
    env.setdefault("GC_FREEZE_ON_START", "true")  # the service owns its process (as in the Dockerfile)
    host = env.get("HOST") or "127.0.0.1"
    port = env.get("PORT") or "8000"
    broker: TansuBroker | None = None
    try:
        if not kafka_enabled(env):
            log("KAFKA_ENABLED is off: no broker")
        elif env.get("KAFKA_BOOTSTRAP_SERVERS"):
            log(f"using KAFKA_BOOTSTRAP_SERVERS={env['KAFKA_BOOTSTRAP_SERVERS']}")
        else:
            broker = start_dev_broker(env)
            env["KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap
        return run_uvicorn(env, host, port)
    except BrokerError as exc:
        log(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        if broker is not None:
            broker.stop()
            log("Tansu broker stopped")


if __name__ == "__main__":
    sys.exit(main())
