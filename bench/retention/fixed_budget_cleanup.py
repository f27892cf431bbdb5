"""The cleanup pass as it was before retention learned to keep up: per table, select a batch of
expired ids, delete them, at most 100 batches per table per run (a fixed row budget)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

MAX_BATCHES_PER_TABLE = 100


def purge(database: Any, rules: list[tuple[Any, Any, Any]], batch_size: int) -> dict[str, int]:
    """Deletes expired rows of each (model, key, condition) rule; returns deleted counts by table."""
    deleted: dict[str, int] = {}
    for model, key, condition in rules:
        total = 0
        for _ in range(MAX_BATCHES_PER_TABLE):
            with database.session() as session:
                ids = list(session.scalars(select(key).where(condition).limit(batch_size)))
                if ids:
                    session.execute(delete(model).where(key.in_(ids)))
            total += len(ids)
            if len(ids) < batch_size:
                break
        deleted[model.__tablename__] = total
    return deleted
