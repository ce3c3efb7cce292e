"""A TCP proxy that delays what it forwards: a slow Redis, on demand.

The degraded demo and the live alert test put it between the application and
Redis and raise :attr:`DelayProxy.delay`; every request the client sends then
reaches Redis that much later, so the client-observed GET latency (and the
latency SLO) degrades exactly as a congested network or an overloaded Redis
would make it, with Redis itself untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import threading
from types import TracebackType
from typing import Any

_CHUNK = 65536


class DelayProxy:
    """Forward ``127.0.0.1:<port>`` to ``target``, delaying each client->server chunk.

    Runs its own event loop in a daemon thread so synchronous code (the demo,
    a test) can start it, change :attr:`delay` at any time and stop it.
    """

    def __init__(
        self, target_host: str, target_port: int, *, listen_port: int = 0, delay: float = 0.0
    ) -> None:
        self.target = (target_host, target_port)
        self.delay = delay
        #: share of forwarded requests that get the delay (1.0: every one)
        self.slow_share = 1.0
        #: its own generator: drawing from the global one would shift every other
        #: user's sequence in this process (a seeded workload, a property-test engine)
        self._rng = random.Random()
        self._listen_port = listen_port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        """``redis://`` URL of the proxy (database 0)."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> DelayProxy:
        ready = threading.Event()
        errors: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._handle, "127.0.0.1", self._listen_port)
                )
                sock: socket.socket = self._server.sockets[0]
                self.port = int(sock.getsockname()[1])
            except BaseException as exc:  # reported to start()'s caller
                errors.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._shutdown())
            loop.close()

        self._thread = threading.Thread(target=serve, name="delay-proxy", daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            raise errors[0]
        return self

    def stop(self) -> None:
        """Close the listener and every connection; return when the thread ended."""
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop = None
        self._thread = None

    def __enter__(self) -> DelayProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            self._tasks.discard(task)
            return
        try:
            await asyncio.gather(
                self._pipe(reader, up_writer, delayed=True),
                self._pipe(up_reader, writer, delayed=False),
            )
        except asyncio.CancelledError:
            pass
        finally:
            for w in (writer, up_writer):
                with contextlib.suppress(Exception):
                    w.close()
            self._tasks.discard(task)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, delayed: bool
    ) -> None:
        try:
            while True:
                data = await reader.read(_CHUNK)
                if not data:
                    break
                if delayed and self.delay > 0 and self._rng.random() < self.slow_share:
                    await asyncio.sleep(self.delay)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()
