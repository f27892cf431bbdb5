"""Admin bearer token: configured (ADMIN_TOKEN) or generated once and kept in a 0600 file."""

from __future__ import annotations

import errno
import os
import secrets
import stat
from pathlib import Path

from servicescheduler.logs import get_logger
from servicescheduler.settings import Settings, SettingsError

log = get_logger(__name__)


def load_admin_token(settings: Settings) -> str:
    """The token mutating routes require. Never logged: only the file's path is.

    Raises SettingsError (one line; start-up stops) when the token file is a symlink, not a
    regular file, or readable by group or others.
    """
    if settings.admin_token is not None and settings.admin_token.get_secret_value():
        return settings.admin_token.get_secret_value()
    path = Path(settings.admin_token_file)
    token = _read_token_file(path)
    if token:
        log.info("admin_token_loaded", path=str(path.resolve()))
        return token
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    # O_EXCL: never write into a file someone else created (or raced us to); O_NOFOLLOW: never
    # through a symlink; 0600 at creation: the token is never readable by others, even briefly.
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise SettingsError(
            f"ADMIN_TOKEN_FILE {path} appeared while the token was being generated; start again"
        ) from None
    with os.fdopen(descriptor, "w") as handle:
        handle.write(token + "\n")
    log.warning(
        "admin_token_generated", path=str(path.resolve()), hint="ADMIN_TOKEN was not set; read the token from this file"
    )
    return token


def _read_token_file(path: Path) -> str | None:
    """The token in an existing owner-only file; None when there is no file (or an empty one,
    left by a crash between create and write: it is removed and generated again)."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SettingsError(
                f"ADMIN_TOKEN_FILE {path} is a symlink; point ADMIN_TOKEN_FILE at the file itself"
            ) from None
        raise SettingsError(f"ADMIN_TOKEN_FILE {path} cannot be read: {exc.strerror}") from None
    with os.fdopen(descriptor) as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise SettingsError(f"ADMIN_TOKEN_FILE {path} is not a regular file")
        if info.st_mode & 0o077:
            raise SettingsError(
                f"ADMIN_TOKEN_FILE {path} is readable by group or others "
                f"(mode {stat.S_IMODE(info.st_mode):04o}); run chmod 600 on it, or delete it "
                "to have a new token generated"
            )
        token = handle.read().strip()
    if not token:
        path.unlink()
    return token or None
