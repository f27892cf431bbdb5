"""Domain errors of the scheduler; server.py maps each to its HTTP status once."""

from __future__ import annotations


class UnknownTask(KeyError):
    """No task has this name (HTTP 404)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"unknown task {self.name!r}"


class TaskBusy(RuntimeError):
    """A run of this task is in progress (HTTP 409)."""


class CoordinationUnavailable(RuntimeError):
    """The shared database cannot be reached to coordinate with other replicas (HTTP 503)."""


class TaskConflict(RuntimeError):
    """The change clashes with what exists: a name taken, a task declared in code (HTTP 409)."""


class InvalidTask(ValueError):
    """A runtime task or trigger cannot be built as asked; the message says why (HTTP 422)."""
