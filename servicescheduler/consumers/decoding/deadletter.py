"""Dead letters: a message that cannot be processed, kept with its reason in a form any database stores.

Raw keys and values are bytes (binary columns take any byte), capped in size; reasons are text
with NUL characters escaped, unpaired surrogates replaced and a length cap, because the reason
often quotes the very value the database refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from servicescheduler.logs import get_logger
from servicescheduler.support.clock import utcnow

log = get_logger(__name__)

ERROR_MAX_CHARS = 2000  # a reason is for a human; the raw value is kept beside it
KEY_MAX_BYTES = 4096


@dataclass
class DeadRow:
    """A message to dead-letter: its position, raw bytes and why."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    kind: str
    error: str

    @property
    def reason(self) -> str:
        """`kind: error`, storable in any text column."""
        return storable_text(f"{self.kind}: {self.error}")


def storable_text(text: str, limit: int = ERROR_MAX_CHARS) -> str:
    """`text` without NUL characters or unpaired surrogates, at most `limit` characters."""
    text = text[: limit * 2].replace("\x00", "\\0")
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def dead_letter_rows(dead: list[DeadRow], value_cap: int) -> list[dict[str, Any]]:
    """Rows for the dead_letters table (value capped at `value_cap` bytes, key at KEY_MAX_BYTES)."""
    now = utcnow()
    return [
        {
            "topic": d.topic,
            "partition": d.partition,
            "offset": d.offset,
            "key": None if d.key is None else d.key[:KEY_MAX_BYTES],
            "value": None if d.value is None else d.value[:value_cap],
            "value_truncated": d.value is not None and len(d.value) > value_cap,
            "error": d.reason,
            "created_at": now,
        }
        for d in dead
    ]


def publish_copies(producer: Any, topic: str, dead: list[DeadRow], *, timeout: float) -> None:
    """Sends each dead letter's raw message to `topic` (reason and origin in headers), then flushes.

    Best effort, one by one: one copy the producer refuses (e.g. over its size limit) is logged
    and does not stop the others; the dead-letter table holds them all anyway.
    """
    for d in dead:
        headers = [
            ("error", d.reason[:1000].encode()),
            ("source_topic", d.topic.encode()),
            ("source_partition", str(d.partition).encode()),
            ("source_offset", str(d.offset).encode()),
        ]
        try:
            producer.send(topic, value=d.value, key=d.key, headers=headers)
        except Exception as exc:
            log.warning(
                "consumer_dlq_publish_failed",
                topic=topic,
                source_topic=d.topic,
                partition=d.partition,
                offset=d.offset,
                error=f"{type(exc).__name__}: {exc}"[:500],
            )
    try:
        producer.flush(timeout=timeout)
    except Exception as exc:
        log.warning(
            "consumer_dlq_publish_failed", topic=topic, messages=len(dead), error=f"{type(exc).__name__}: {exc}"[:500]
        )
