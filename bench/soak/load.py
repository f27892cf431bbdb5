"""The soak's event load: a paced kafka-python producer in a thread, bounded in count and time.

Events are `consumers.produce.sample_event` (~300 B, some with `notify`), keyed by their id so they
spread over the partitions; one in `bad_every` is a malformed message of the kinds the consumer must
dead-letter (invalid JSON, invalid UTF-8, schema violation). Only what the broker acknowledged counts
as produced; the ids of acknowledged good events are kept to find any that were never stored.
"""

from __future__ import annotations

import json
import random
import threading
import time
from typing import Any

BAD_KINDS = ("json", "encoding", "schema")
FLUSH_TIMEOUT_S = 60.0


class PacedProducer:
    """Sends `rate` messages/s for `seconds` s (at most rate × seconds messages), then flushes."""

    def __init__(
        self, bootstrap: str, topic: str, rate: float, seconds: float, *, bad_every: int = 500, seed: int = 8
    ) -> None:
        self.bootstrap, self.topic, self.rate, self.seconds = bootstrap, topic, rate, seconds
        self.bad_every = bad_every
        self.total = int(rate * seconds)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.acked_ids: set[str] = set()
        self.acked_bad = 0
        self.failed = 0
        self.sent = 0
        self.error: str | None = None
        self.elapsed_s: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-producer", daemon=True)

    def start(self) -> PacedProducer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ends the sending early (the flush still runs)."""
        self._stop.set()

    def join(self, timeout: float) -> bool:
        """Waits for the send loop and the flush; True when the thread ended."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def acked(self) -> int:
        with self._lock:
            return len(self.acked_ids) + self.acked_bad

    def counts(self) -> dict[str, Any]:
        with self._lock:
            return {
                "sent": self.sent,
                "acked_good": len(self.acked_ids),
                "acked_bad": self.acked_bad,
                "failed": self.failed,
                "error": self.error,
                "elapsed_s": self.elapsed_s,
            }

    def _message(self, index: int) -> tuple[bytes, bytes | None, str | None]:
        """(value, key, event id or None for a malformed message)."""
        from devtools.produce import bad_message, sample_event

        if self.bad_every and index % self.bad_every == self.bad_every - 1:
            kind = BAD_KINDS[(index // self.bad_every) % len(BAD_KINDS)]
            return bad_message(kind, self._rng, max_bytes=1_048_576), None, None
        event = sample_event(self._rng, notify=self._rng.random() < 0.05)
        return json.dumps(event).encode(), event["id"].encode(), event["id"]

    def _acked(self, event_id: str | None) -> Any:
        def callback(_metadata: object) -> None:
            with self._lock:
                if event_id is None:
                    self.acked_bad += 1
                else:
                    self.acked_ids.add(event_id)

        return callback

    def _failed(self, _exc: BaseException) -> None:
        with self._lock:
            self.failed += 1

    def _run(self) -> None:
        from kafka import KafkaProducer

        started = time.monotonic()
        producer = None
        try:
            producer = KafkaProducer(bootstrap_servers=[self.bootstrap], acks="all", linger_ms=5)
            deadline = started + self.seconds * 1.5 + 10  # a producer that falls far behind gives up
            for index in range(self.total):  # bounded in count and in time
                if self._stop.is_set() or time.monotonic() > deadline:
                    break
                delay = started + index / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                value, key, event_id = self._message(index)
                future = producer.send(self.topic, value=value, key=key)
                future.add_callback(self._acked(event_id))
                future.add_errback(self._failed)
                with self._lock:
                    self.sent += 1
            producer.flush(timeout=FLUSH_TIMEOUT_S)
        except Exception as exc:  # reported in the results, not raised in a thread
            with self._lock:
                self.error = f"{type(exc).__name__}: {exc}"
        finally:
            if producer is not None:
                producer.close(timeout=10)
            self.elapsed_s = round(time.monotonic() - started, 2)
