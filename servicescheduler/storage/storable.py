"""Making a record storable when the database refused it: text without NUL bytes or lone
surrogates (PostgreSQL and the UTF-8 codecs refuse both), cut to its column's length."""

from __future__ import annotations

import dataclasses

from servicescheduler.storage.models import AuditEntry, TaskRun
from servicescheduler.storage.records import AuditRecord, RunRecord

TEXT_CAP = 8000  # an error text longer than this is cut: the traceback is in the log line
TRUNCATION_MARK = "…"


def clean_text(text: str, limit: int = TEXT_CAP) -> str:
    """`text` with NUL bytes removed, lone surrogates replaced and at most `limit` characters."""
    cleaned = text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    if len(cleaned) > limit:
        cleaned = cleaned[: max(0, limit - len(TRUNCATION_MARK))] + TRUNCATION_MARK
    return cleaned


def _fit(model: type, column: str, text: str) -> str:
    """`text` cleaned and cut to the length of `model`'s `column` (TEXT_CAP for unbounded text)."""
    length = getattr(model.__table__.columns[column].type, "length", None)  # type: ignore[attr-defined]
    return clean_text(text, length if isinstance(length, int) else TEXT_CAP)


def storable_run(run: RunRecord) -> RunRecord:
    """A copy of `run` whose text fields the database accepts."""
    return dataclasses.replace(
        run,
        run_id=_fit(TaskRun, "run_id", run.run_id),
        task=_fit(TaskRun, "task", run.task),
        cause=_fit(TaskRun, "trigger", run.cause),  # outcome: a RunOutcome, which always fits
        error=None if run.error is None else _fit(TaskRun, "error", run.error),
    )


def storable_audit(audit: AuditRecord) -> AuditRecord:
    """A copy of `audit` whose text fields the database accepts (its JSON detail is kept as is)."""
    return dataclasses.replace(
        audit,
        actor=_fit(AuditEntry, "actor", audit.actor),
        action=_fit(AuditEntry, "action", audit.action),
        target=_fit(AuditEntry, "target", audit.target),
    )


def storable(record: RunRecord | AuditRecord) -> RunRecord | AuditRecord:
    """`record` made storable (see storable_run and storable_audit)."""
    return storable_run(record) if isinstance(record, RunRecord) else storable_audit(record)
