"""Storage: engine and session factory (db), typed models (models), migrations (migrate)."""

from storage.db import Database, utcnow

__all__ = ["Database", "utcnow"]
