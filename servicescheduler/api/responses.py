"""OpenAPI declarations of the error answers, so the published schema matches what the API
sends: every error is `{"detail": "<sentence>"}` (422 included: see server._validation_detail)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

DESCRIPTIONS = {
    400: "The body could not be read as JSON text (e.g. it is not UTF-8)",
    401: "Missing or invalid bearer token (Authorization: Bearer <ADMIN_TOKEN>)",
    404: "No such task (or nothing to show yet)",
    409: "Conflict: a run of the task is in progress, or Kafka is switched off",
    413: "Request body larger than MAX_REQUEST_BYTES",
    422: "Invalid input: one sentence per invalid field",
    500: "Unexpected failure: the detail names an error id to look up in the service log",
    503: "The database is unavailable; try again after Retry-After seconds",
}


class ErrorDetail(BaseModel):
    """The body of every error answer."""

    detail: str = Field(description="What went wrong, as a sentence")


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries documenting these error status codes with the ErrorDetail body."""
    return {code: {"model": ErrorDetail, "description": DESCRIPTIONS[code]} for code in codes}
