"""Helpers of the kill -9 test: short tasks the server subprocess imports (TASK_MODULES)."""
