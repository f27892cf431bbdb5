"""The kill -9 test's helpers: the loop and its checks (loop.py) and the short tasks the server
subprocess imports through TASK_MODULES (tasks.py)."""
