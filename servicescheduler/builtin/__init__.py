"""Built-in tasks. Each module declares its task on `scheduling.tasks`; importing this package
registers them all (BUILTIN_TASKS chooses which of them an instance runs). Your own tasks live in
your own package, named by TASK_MODULES."""

from servicescheduler.builtin import cleanup, notifications, report  # noqa: F401  (registers the tasks)
