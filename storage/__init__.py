"""Storage: engine and session factory (db), typed models (models), migrations (migrate)."""

from storage.db import Database
from support.clock import utcnow

__all__ = ["Database", "utcnow"]
