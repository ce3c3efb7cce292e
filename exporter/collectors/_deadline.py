"""A wall-clock deadline for one blocking call, which socket timeouts alone cannot give.

Socket timeouts bound each ``recv``, not a reply: a server (or a network) that
sends one byte every so often keeps a client reading forever, and name
resolution (``getaddrinfo``) takes no timeout at all.  :class:`Deadline` runs
the call in a short-lived daemon thread and stops waiting for it when the
time is up (``TimeoutError``).  The abandoned thread ends when its own
socket timeout, the server or :meth:`close` of its client ends the call; at
most ``max_pending`` such calls are in flight per :class:`Deadline`, beyond
that a call fails at once instead of piling up threads behind a wedged server.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

T = TypeVar("T")

#: calls in flight per Deadline (concurrent scrapes plus abandoned ones) before refusing
DEFAULT_MAX_PENDING = 4


class DeadlineExceeded(TimeoutError):
    """The call did not finish in time (or too many earlier ones are still stuck)."""


class Deadline:
    """Run blocking calls in helper threads, waiting for each at most its timeout."""

    def __init__(self, name: str, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        self.name = name
        self._slots = threading.BoundedSemaphore(max_pending)

    def run(self, call: Callable[[], T], timeout: float) -> T:
        """``call()``'s result or exception; ``DeadlineExceeded`` after ``timeout`` seconds."""
        if not self._slots.acquire(blocking=False):
            raise DeadlineExceeded(f"{self.name}: earlier calls are still waiting on the server")
        future: Future[T] = Future()

        def target() -> None:
            try:
                future.set_result(call())
            except BaseException as exc:  # handed to the caller, whatever it is
                future.set_exception(exc)
            finally:
                self._slots.release()

        thread = threading.Thread(target=target, name=f"deadline[{self.name}]", daemon=True)
        thread.start()
        try:
            return future.result(timeout)
        except TimeoutError:
            if future.done():  # the call itself raised a TimeoutError
                raise
            raise DeadlineExceeded(f"{self.name}: no answer within {timeout:g}s") from None
