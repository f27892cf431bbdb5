"""Built-in tasks: notifications (delivers what the consumer's events asked for), cleanup
(retention) and report. Each module declares its task on `builtin_tasks` with the same decorator
users write; importing this package declares them all, and BUILTIN_TASKS chooses which of them an
instance serves (default: all, since the consumer creates notifications and every table needs
retention)."""

from servicescheduler.builtin import cleanup, notifications, report  # noqa: F401  (declares the tasks)
from servicescheduler.builtin.registry import builtin_tasks

__all__ = ["builtin_tasks"]
