"""ServiceScheduler: periodic tasks and a durable Kafka consumer inside your FastAPI app.

The public API is what this module exports; everything else is the package's own business.

- `ServiceScheduler`: one embeddable instance (its tasks, handlers, `router`, `dashboard`,
  `lifespan`/`running()`); `Settings`/`SettingsError` configure it (`load_settings()` reads the
  environment and `.env`, TASK_<NAME>_* included).
- `TaskContext`, `every` and `cron` (and `Trigger`): what a task declaration uses; `TaskRegistry` for a
  module's own set of tasks; `TaskDefinitionError` names a bad declaration.
- `TopicContract`/`TopicRegistry`/`CloudEvent`: a topic of your own and its contract (`@scheduler.topic(...)`).
- `tasks`, `handlers` and `topics`: the module-level registries that modules named by TASK_MODULES declare
  on (the reference service serves them).
- `BatchWriter`, `Event`, `MessageMeta`: what an event handler receives.
- `configure_logging`: JSON lines on stdout for programs (the library itself never configures logging).
- `servicescheduler.testing`: helpers for your tests (fake clock, run now, feed messages).
"""

from servicescheduler.consumers.decoding.cloudevents import CloudEvent
from servicescheduler.consumers.decoding.contracts import TopicContract, TopicDefinitionError, TopicRegistry, topics
from servicescheduler.consumers.decoding.events import Event
from servicescheduler.consumers.storing.handlers import BatchWriter, HandlerRegistry, MessageMeta, handlers
from servicescheduler.embedding import ServiceScheduler
from servicescheduler.errors import StartupError
from servicescheduler.logs import configure_logging
from servicescheduler.scheduling.registry import TaskContext, TaskDefinitionError, TaskRegistry, tasks
from servicescheduler.scheduling.triggers import Trigger, cron, every
from servicescheduler.settings import Settings, SettingsError, load_settings

__version__ = "1.0.0"

__all__ = [
    "BatchWriter",
    "CloudEvent",
    "Event",
    "HandlerRegistry",
    "MessageMeta",
    "ServiceScheduler",
    "Settings",
    "SettingsError",
    "StartupError",
    "TaskContext",
    "TaskDefinitionError",
    "TaskRegistry",
    "TopicContract",
    "TopicDefinitionError",
    "TopicRegistry",
    "Trigger",
    "__version__",
    "configure_logging",
    "cron",
    "every",
    "handlers",
    "load_settings",
    "tasks",
    "topics",
]
