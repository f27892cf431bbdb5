"""An HTTP protocol for uvicorn: its h11 protocol plus a deadline for each request head, so that a
slow client (slowloris) cannot hold a connection for ever.

uvicorn times out idle keep-alive connections (`--timeout-keep-alive`), but once a client has sent
the first byte of a request head it waits for the rest without limit: 500 connections trickling a
header byte now and then stay open indefinitely, each with its socket and buffers. Here a connection
whose request head is not complete within REQUEST_HEAD_TIMEOUT seconds of the moment it started
waiting for it (the connection opened, or the previous response on a keep-alive connection ended)
gets a 408 and is closed. A request body is not covered: the API bounds its size and reads it in
the app.

`--limit-concurrency` is deliberately not used with it: uvicorn counts open connections against that
limit, so slow clients holding connections would make it answer 503 to every well-behaved one.

It is in the library, not in the reference service, because every host serving the library's
routes with uvicorn has the same exposure and can use it with one option:
`uvicorn app:app --http servicescheduler.uvicorn_protocol:HeadTimeoutH11Protocol`. Nothing else in
the package imports this module, so uvicorn stays a dependency of the hosts that use it (the extra
`servicescheduler[uvicorn]`), not of the library. The reference service is served with it everywhere:
`devtools/serve.py`'s command line (`make run`, the tests that start a real server) and the
Dockerfile's CMD.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from servicescheduler.logs import get_logger

log = get_logger(__name__)

# Seconds a client has to send a whole request head. Browsers and HTTP clients send a head in one
# write (a few KiB at most); 10 s leaves room for a slow mobile link, far from "for ever".
REQUEST_HEAD_TIMEOUT = 10.0

# The answer to a head that did not arrive in time (RFC 9110 §15.5.9); written raw because h11
# cannot send a response to a request it has not seen.
_TIMEOUT_BODY = b"request head not received in time"
REQUEST_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
    b"content-length: %d\r\n\r\n%s" % (len(_TIMEOUT_BODY), _TIMEOUT_BODY)
)


class HeadTimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request head (REQUEST_HEAD_TIMEOUT)."""

    head_timeout = REQUEST_HEAD_TIMEOUT

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watch_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_deadline()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        self._watch_head()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch_head()

    def _watch_head(self) -> None:
        """Arms the deadline when the connection starts waiting for a request head; cancels it once
        the head is in. Not re-armed by bytes that arrive meanwhile: trickling does not extend it."""
        waiting = self.conn.their_state is h11.IDLE and not self.transport.is_closing()
        if waiting and self._head_deadline is None:
            self._head_deadline = self.loop.call_later(self.head_timeout, self._head_timed_out)
        elif not waiting:
            self._cancel_head_deadline()

    def _cancel_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        received = len(self.conn.trailing_data[0])
        log.warning(
            "request_head_timeout",
            client=_address(self.client),
            timeout_seconds=self.head_timeout,
            received_bytes=received,
        )
        if received:
            # Part of a head arrived: tell the client why it is cut off. A connection that sent
            # nothing (an idle keep-alive one is closed by uvicorn's own, shorter timeout) just closes.
            self.transport.write(REQUEST_TIMEOUT_RESPONSE)
        self.transport.close()


def _address(client: tuple[str, int] | None) -> str | None:
    return f"{client[0]}:{client[1]}" if client else None
