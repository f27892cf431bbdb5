"""Built-in tasks. Each module declares its task on `registry.tasks`; importing this package
registers them all. To add a task: write a module here and import it below."""

from services import cleanup, notifications, report  # noqa: F401  (registers the tasks)
