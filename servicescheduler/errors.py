"""The error a program catches to stop with one line: the service cannot start as configured."""


class StartupError(RuntimeError):
    """The service cannot start as configured; the message is one line naming the cause."""
