"""Loopback servers that fail the way a bad day does, without root or iptables.

- :class:`Frozen`: accepts every connection and never answers (a hung Redis);
- :class:`BlackHole`: connects hang until their timeout (SYNs dropped, as behind a
  firewall or to a vanished host): a ``listen(0)`` socket whose one-slot accept
  queue is filled by a connection nobody accepts, so the kernel drops every further
  SYN (checked on start: it raises if connects still complete);
- :class:`Dead`: a closed port (connection refused at once);
- :class:`NotRedis`: an HTTP server: it answers, but not in Redis protocol.

Each has ``port``, ``url``, ``reset()`` (drop what the last test left) and
``close()``; :func:`fault_server` builds one by name.  Used by
``tests/client/test_deadlines.py`` and ``benchmarks/failure_latency.py``.
"""

from __future__ import annotations

import http.server
import socket
import socketserver
import threading
from collections.abc import Callable
from typing import Any

FAULTS = ("frozen", "black-holed", "dead")


class Frozen:
    """Accepts every connection and never reads or writes a byte."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4096)
        self.port: int = self.sock.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.held: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="frozen-redis", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                self.held.append(conn)

    def reset(self) -> None:
        with self._lock:
            held, self.held = self.held, []
        for conn in held:
            conn.close()

    def close(self) -> None:
        self.sock.close()
        self.reset()


class BlackHole:
    """A port whose SYNs are dropped: ``listen(0)``, accept queue full, never accepted."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port: int = self.sock.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.fillers: list[socket.socket] = []
        for _ in range(8):  # Linux queues backlog + 1: fill it, then see connects hang
            probe = socket.socket()
            probe.settimeout(0.2)
            try:
                probe.connect(("127.0.0.1", self.port))
            except OSError:
                probe.close()
                return
            self.fillers.append(probe)
        self.close()
        raise RuntimeError("black hole: connects still complete here; cannot drop SYNs")

    def reset(self) -> None:
        pass

    def close(self) -> None:
        for filler in self.fillers:
            filler.close()
        self.sock.close()


class Dead:
    """A closed port: connection refused."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port: int = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def reset(self) -> None:
        pass

    def close(self) -> None:
        pass


class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"<html>not redis</html>")

    def log_message(self, format: str, *args: Any) -> None:
        pass


class NotRedis:
    """An HTTP server on a loopback port: whatever it is sent, it answers HTTP."""

    def __init__(self) -> None:
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Page)
        self.server.daemon_threads = True
        self.port: int = self.server.server_address[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        threading.Thread(target=self.server.serve_forever, name="http", daemon=True).start()

    def reset(self) -> None:
        pass

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def fault_server(kind: str) -> Frozen | BlackHole | Dead | NotRedis:
    """A started server of ``kind``: ``frozen``, ``black-holed``, ``dead`` or ``http``."""
    servers: dict[str, Callable[[], Frozen | BlackHole | Dead | NotRedis]] = {
        "frozen": Frozen,
        "black-holed": BlackHole,
        "dead": Dead,
        "http": NotRedis,
    }
    return servers[kind]()
