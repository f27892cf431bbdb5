"""The scheduler's parts, one concept per module; task authors import from here only:

    from servicescheduler.scheduling import TaskContext, every, tasks

- registry: task declarations (`tasks`, TaskSpec, TaskContext, TaskDefinitionError)
- triggers: *when* (`every(...)`, `cron(...)`, the start-to-start grid, `next_fire`)
- cron: calendar rules (cron lines, `.at`) in a time zone under one DST policy
- agenda: the heap of due items the loop sleeps on
- tracked: what the scheduler tracks in memory per task (TrackedTask)
- launcher: how one due run executes on a worker (RunLauncher)
- executor: *where* runs execute (thread pool, fresh event loops, process pool)
- bookkeeping: what a finished run updates (counters, metrics, history, the task_run line)
- recorder: the run-history writer thread (transient retries, refused records isolated, bounded)
- downtime: calendar slots that passed while the service was down (`missed`, `catch_up`)
- coordination: several replicas on one database (slot claims, running leases)
- cluster_sync: heartbeats, shared control (LISTEN/NOTIFY or poll), lease reaping
- supervision: components the loop looks after (the Kafka consumer)
- views: the scheduler's read-only half (status, health, waits)
- errors: UnknownTask, TaskBusy
The Scheduler itself (servicescheduler/scheduler.py) composes them.
"""

from servicescheduler.scheduling.registry import TaskContext, TaskDefinitionError, TaskRegistry, TaskSpec, tasks
from servicescheduler.scheduling.triggers import Trigger, cron, every

__all__ = ["TaskContext", "TaskDefinitionError", "TaskRegistry", "TaskSpec", "Trigger", "cron", "every", "tasks"]
