"""Storage: engine and session factory (db), typed models (models), migrations (migrate)."""

from servicescheduler.storage.db import Database
from servicescheduler.support.clock import utcnow

__all__ = ["Database", "utcnow"]
