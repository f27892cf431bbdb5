"""A real HTTP webhook receiver on 127.0.0.1 for notification tests and benchmarks."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_HOST = "127.0.0.1"


class WebhookReceiver:
    """Records JSON POSTs and their headers; answers with `status` (settable, e.g. 500 to simulate
    failures). `delays` holds back the answer to the notification of an event id by that many
    seconds; `trickle` answers it with a 20-byte body sent one byte per that many seconds (each
    read is quick, the whole answer slow); `on_request(body)` is called before answering (e.g. to
    kill the sender)."""

    def __init__(
        self,
        status: int = 200,
        delays: dict[str, float] | None = None,
        on_request: Callable[[dict], None] | None = None,
        trickle: dict[str, float] | None = None,
    ) -> None:
        self.status = status
        self.delays = delays or {}
        self.trickle = trickle or {}
        self.on_request = on_request
        self.received: list[dict] = []
        self.received_at: list[float] = []
        self.headers: list[dict[str, str]] = []
        self._closing = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real webhook endpoint would

            def do_POST(self) -> None:  # noqa: N802 (http.server naming)
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"null")
                with receiver._lock:
                    receiver.received.append(body)
                    receiver.received_at.append(time.time())
                    receiver.headers.append({k.lower(): v for k, v in self.headers.items()})
                if receiver.on_request is not None:
                    receiver.on_request(body)
                event_id = str(body.get("event_id")) if isinstance(body, dict) else ""
                delay = receiver.delays.get(event_id)
                if delay and receiver._closing.wait(delay):
                    return
                self.send_response(receiver.status)
                step = receiver.trickle.get(event_id)
                self.send_header("Content-Length", "20" if step else "0")
                self.end_headers()
                for _ in range(20 if step else 0):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    if receiver._closing.wait(step):
                        return

            def log_message(self, *args: object) -> None:
                return None

        class Server(ThreadingHTTPServer):
            request_queue_size = 128  # the default backlog of 5 drops bursts of concurrent POSTs
            daemon_threads = True

        self._server = Server((_HOST, 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True)

    @property
    def url(self) -> str:
        """The URL to configure as NOTIFY_WEBHOOK_URL."""
        return f"http://{_HOST}:{self._server.server_port}/hook"

    def start(self) -> WebhookReceiver:
        """Starts serving in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops serving and closes the socket."""
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
