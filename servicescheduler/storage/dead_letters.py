"""Reading dead letters back: the newest rows of `dead_letters`, with a text preview of the raw bytes.

The preview is plain text (UTF-8 with replacement characters); whoever displays it must escape it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from servicescheduler.storage.db import Database
from servicescheduler.storage.models import DeadLetter

PREVIEW_CHARS = 500


def preview(raw: bytes | None, limit: int = PREVIEW_CHARS) -> tuple[str | None, bool]:
    """(text, shortened): the first `limit` characters of `raw` decoded as UTF-8 (bad bytes become U+FFFD)."""
    if raw is None:
        return None, False
    text = raw.decode("utf-8", errors="replace")
    return text[:limit], len(text) > limit


def recent_dead_letters(database: Database, limit: int) -> list[dict[str, Any]]:
    """The newest `limit` dead letters, newest first, as API dicts."""
    query = select(DeadLetter).order_by(DeadLetter.id.desc()).limit(limit)
    rows = []
    with database.read_session() as session:
        for row in session.scalars(query):
            value, shortened = preview(row.value)
            key, _ = preview(row.key, 128)
            rows.append(
                {
                    "id": row.id,
                    "topic": row.topic,
                    "partition": row.partition,
                    "offset": row.offset,
                    "reason": row.error,
                    "created_at": row.created_at.isoformat().replace("+00:00", "Z"),
                    "key": key,
                    "value_preview": value,
                    "value_truncated": row.value_truncated or shortened,
                }
            )
    return rows
