"""A small fake RESP server for replies a real Redis never gives (malformed, hostile, huge).

Each connection is served by its own thread: requests are parsed as RESP arrays of
bulk strings (what redis-py sends), and ``handler(args)`` returns the raw bytes to
answer with (see the ``bulk``/``simple``/``error``/``array`` helpers), or ``None``
to stay silent.  The handler can be swapped while the server runs, so a test can
turn a hostile server into a sane one and watch a collector recover.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterable

Handler = Callable[[list[bytes]], bytes | None]


def bulk(data: bytes | str) -> bytes:
    raw = data.encode() if isinstance(data, str) else data
    return b"$%d\r\n%s\r\n" % (len(raw), raw)


def simple(text: str) -> bytes:
    return f"+{text}\r\n".encode()


def error(text: str) -> bytes:
    return f"-{text}\r\n".encode()


def integer(value: int) -> bytes:
    return f":{value}\r\n".encode()


def array(items: Iterable[bytes]) -> bytes:
    parts = list(items)
    return b"*%d\r\n" % len(parts) + b"".join(parts)


def info_text(sections: dict[str, Iterable[str]]) -> str:
    """INFO text as Redis writes it: ``# Section`` headers, ``\\r\\n`` line ends."""
    out: list[str] = []
    for name, lines in sections.items():
        out.append(f"# {name}")
        out.extend(lines)
        out.append("")
    return "\r\n".join(out)


#: a plausible INFO ALL of a healthy server (what the fakes answer unless told otherwise)
BASIC_INFO: dict[str, list[str]] = {
    "Server": ["redis_version:7.0.15", "redis_mode:standalone", "run_id:" + "a" * 40],
    "Clients": ["connected_clients:1"],
    "Memory": ["used_memory:1000", "maxmemory:0", "maxmemory_policy:noeviction"],
    "Stats": ["keyspace_hits:5", "keyspace_misses:2", "evicted_keys:0", "expired_keys:0"],
    "Replication": ["role:master"],
    "Commandstats": ["cmdstat_get:calls=2,usec=11,usec_per_call=5.5"],
    "Keyspace": [],
}


def info_reply(sections: dict[str, list[str]] | None = None) -> bytes:
    return bulk(info_text(BASIC_INFO if sections is None else sections))


def basic_handler(info: bytes) -> Handler:
    """Answers INFO (any section) with ``info``, and the few other commands the
    collectors send with what an empty Redis would."""

    def handle(args: list[bytes]) -> bytes | None:
        cmd = args[0].upper() if args else b""
        if cmd == b"INFO":
            return info
        if cmd == b"PING":
            return simple("PONG")
        if cmd == b"CONFIG":
            return array([bulk("notify-keyspace-events"), bulk("Exe")])
        if cmd == b"PSUBSCRIBE":
            return b"".join(
                array([bulk("psubscribe"), bulk(p), integer(i)]) for i, p in enumerate(args[1:], 1)
            )
        if cmd == b"DBSIZE":
            return integer(0)
        if cmd == b"SCAN":
            return array([bulk("0"), array([])])
        if cmd in (b"CLIENT", b"SELECT", b"HELLO", b"AUTH"):
            return simple("OK")
        return error(f"ERR unknown command '{cmd.decode('latin-1')}'")

    return handle


def sectioned_handler(sections: dict[str, list[str]]) -> Handler:
    """Like :func:`basic_handler`, but ``INFO <section>`` answers with that section
    alone (as Redis does) and ``INFO``/``INFO ALL`` with every one."""
    full = info_reply(sections)
    by_name = {name.lower(): info_reply({name: lines}) for name, lines in sections.items()}
    rest = basic_handler(full)

    def handle(args: list[bytes]) -> bytes | None:
        if args and args[0].upper() == b"INFO" and len(args) > 1:
            wanted = args[1].decode("latin-1").lower()
            if wanted not in ("all", "everything", "default"):
                return by_name.get(wanted, bulk(""))
        return rest(args)

    return handle


class FakeRedis:
    """A loopback TCP server speaking just enough RESP to answer from ``handler``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.port = int(self.sock.getsockname()[1])
        self.commands: list[list[bytes]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._serve, daemon=True)
        self._accept.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._conns.append(conn)
            thread = threading.Thread(target=self._client, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _client(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        try:
            while not self._stop.is_set():
                args = _read_command(reader)
                if args is None:
                    return
                with self._lock:
                    self.commands.append(args)
                reply = self.handler(args)
                if reply is not None:
                    conn.sendall(reply)
        except (OSError, ValueError):
            return
        finally:
            reader.close()

    def close(self) -> None:
        self._stop.set()
        self._accept.join(5)
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        for thread in self._threads:
            thread.join(5)
        self.sock.close()

    def __enter__(self) -> FakeRedis:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _read_command(reader: object) -> list[bytes] | None:
    """One RESP array of bulk strings, or None at end of stream."""
    readline = reader.readline  # type: ignore[attr-defined]
    read = reader.read  # type: ignore[attr-defined]
    header = readline()
    if not header:
        return None
    if not header.startswith(b"*"):  # an inline command
        return header.strip().split()
    args = []
    for _ in range(int(header[1:])):
        size = readline()
        if not size.startswith(b"$"):
            raise ValueError(f"expected a bulk string, got {size!r}")
        args.append(read(int(size[1:]) + 2)[:-2])
    return args
