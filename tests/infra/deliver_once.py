"""One notifications pass in its own process (`python -m tests.infra.deliver_once`), configured
from the environment like the service: lets a test kill the process in the middle of a POST."""

from __future__ import annotations

import asyncio

from servicescheduler.builtin.notifications import deliver_pending
from servicescheduler.settings import load_settings
from servicescheduler.storage.db import Database


def main() -> None:
    settings = load_settings()
    database = Database(settings)
    try:
        print(asyncio.run(deliver_pending(database=database, settings=settings)), flush=True)
    finally:
        database.dispose()


if __name__ == "__main__":
    main()
