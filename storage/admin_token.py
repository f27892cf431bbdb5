"""Admin bearer token: configured (ADMIN_TOKEN) or generated once and kept in a 0600 file."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from logs import get_logger
from settings import Settings

log = get_logger(__name__)


def load_admin_token(settings: Settings) -> str:
    """The token mutating routes require. Never logged: only the file's path is."""
    if settings.admin_token is not None and settings.admin_token.get_secret_value():
        return settings.admin_token.get_secret_value()
    path = Path(settings.admin_token_file)
    if path.exists():
        token = path.read_text().strip()
        if token:
            log.info("admin_token_loaded", path=str(path.resolve()))
            return token
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    # O_EXCL + mode 0600 at creation: the token is never readable by others, even briefly.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(token + "\n")
    os.chmod(path, 0o600)
    log.warning("admin_token_generated", path=str(path.resolve()),
                hint="ADMIN_TOKEN was not set; read the token from this file")
    return token
