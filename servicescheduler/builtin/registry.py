"""The registry the built-in tasks are declared on (not the module-level `tasks` of user modules):
a ServiceScheduler serves those of them its BUILTIN_TASKS setting names."""

from servicescheduler.scheduling.registry import TaskRegistry

builtin_tasks = TaskRegistry()
