"""A wall-clock deadline for one blocking call, which socket timeouts alone cannot give.

Socket timeouts bound each ``recv``, not a reply: a server (or a network) that
sends one byte every so often keeps a client reading forever, and name
resolution (``getaddrinfo``) takes no timeout at all.  :class:`Deadline` runs
the call in a daemon helper thread and stops waiting for it when the time is
up (``TimeoutError``).  Helpers are reused (a few kept idle, each for a while):
starting a thread per call cost more than an INFO call.  An abandoned helper is
free again when its own socket timeout, the server or :meth:`close` of its
client ends the call; at
most ``max_pending`` such calls are in flight per :class:`Deadline`, beyond
that a call fails at once instead of piling up threads behind a wedged server.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

T = TypeVar("T")

#: calls in flight per Deadline (concurrent scrapes plus abandoned ones) before refusing
DEFAULT_MAX_PENDING = 4


class DeadlineExceeded(TimeoutError):
    """The call did not finish in time (or too many earlier ones are still stuck)."""


#: idle helper threads kept for the next call (starting a thread per call cost about
#: 0.8 ms of a 2 ms INFO scrape); an idle one ends after IDLE_SECONDS unused
MAX_IDLE = 8
IDLE_SECONDS = 30.0
#: an idle helper's name; a busy one is named after its Deadline, ``deadline[name]``
IDLE_NAME = "deadline-idle"


class _Helper:
    """One daemon thread running the calls handed to it, parked between calls."""

    def __init__(self, pool: _Helpers) -> None:
        self._pool = pool
        self._jobs: queue.SimpleQueue[tuple[str, Callable[[], None]]] = queue.SimpleQueue()
        threading.Thread(target=self._run, name=IDLE_NAME, daemon=True).start()

    def give(self, name: str, job: Callable[[], None]) -> None:
        self._jobs.put((name, job))

    def _run(self) -> None:
        me = threading.current_thread()
        while True:
            try:
                name, job = self._jobs.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                if self._pool.retire(self):
                    return
                continue  # taken for a call just now: its job is on the way
            me.name = f"deadline[{name}]"
            job()  # never raises: the Deadline hands every outcome to its Future
            del job  # not kept alive (with its reply) while parked
            me.name = IDLE_NAME
            if not self._pool.park(self):
                return


class _Helpers:
    """The idle helpers, shared by every :class:`Deadline` (one per ``/scrape``
    request would otherwise each keep their own)."""

    def __init__(self, max_idle: int = MAX_IDLE) -> None:
        self.max_idle = max_idle
        self._idle: list[_Helper] = []
        self._lock = threading.Lock()

    def run(self, name: str, job: Callable[[], None]) -> None:
        with self._lock:
            helper = self._idle.pop() if self._idle else None
        (helper or _Helper(self)).give(name, job)

    def park(self, helper: _Helper) -> bool:
        """Keep ``helper`` for a later call; False: enough are idle, let it end."""
        with self._lock:
            if len(self._idle) >= self.max_idle:
                return False
            self._idle.append(helper)
            return True

    def retire(self, helper: _Helper) -> bool:
        """Forget an idle ``helper`` that timed out; False: it was just taken for a call."""
        with self._lock:
            if helper in self._idle:
                self._idle.remove(helper)
                return True
            return False


_HELPERS = _Helpers()


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

        _HELPERS.run(self.name, target)
        try:
            return future.result(timeout)
        except TimeoutError:
            if future.done():  # the call itself raised a TimeoutError
                raise
            raise DeadlineExceeded(f"{self.name}: no answer within {timeout:g}s") from None
