"""Stampede protection for ``get_or_compute``: three layers.

1. **Single-flight in one process**: concurrent callers for one cold key share
   one computation (threads: :class:`SingleFlight`; asyncio tasks:
   :class:`AsyncSingleFlight`).
2. **A short Redis lease lock across processes**: ``SET lock NX PX lease`` with
   a random token; the holder computes, others poll for the value.  The lease
   expires by itself, so a crashed holder cannot wedge the key, while a live
   holder renews it every third of a lease (compare-and-pexpire), so a loader
   slower than the lease does not let other processes compute too (threads:
   :class:`LeaseRenewer`; asyncio tasks: :class:`AsyncLeaseRenewer`).  Release is
   a compare-and-delete script, so a holder whose lease ran out cannot delete a
   successor's lock.  Both scripts touch one key (cluster-safe).  A waiter keeps
   polling as long as the lock exists, whatever the lease: it reads the value
   once the holder writes it, takes the lock and computes itself when the lock
   disappears without a value (the holder crashed and its lease expired), and
   computes anyway, counted as a ``get_or_compute`` ``timeout`` error, only
   after ``lock_max_wait`` seconds (default 30: fail open rather than hang).
3. **XFetch early refresh** (:func:`exporter.client.core.xfetch_due`): each
   computed value has a companion key (``!xf:{key}``, same hash slot, same TTL)
   holding its compute time, expiry and checksum
   (:func:`exporter.client.serialization.encode_meta`), read with the value in one
   ``MGET``; a reader refreshes a hot key early with a probability that rises
   towards expiry, so hot keys never all expire at once.  The value itself stays
   plain JSON; a value without a matching companion (written by another service)
   is simply not refreshed early.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")

#: delete the lock only if it still holds our token
RELEASE_SCRIPT = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""

#: extend the lock's lease only while it still holds our token
EXTEND_SCRIPT = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""

#: read a tag's members and delete the tag set in one step (one key: cluster-safe)
POP_TAG_SCRIPT = """
local members = redis.call('smembers', KEYS[1])
redis.call('del', KEYS[1])
return members
"""

#: poll interval while another process holds the lock: start short, back off
POLL_FIRST = 0.005
POLL_MAX = 0.05


class LeaseRenewer:
    """One daemon thread per service that renews the leases of the locks this
    process holds, every third of a lease.  It runs only while locks are held (it
    exits at the first tick with none, and the next lock starts it again), and
    :meth:`stop` (``CacheService.close``) ends it.  ``renew(lock, token)`` returns
    False when the lock is no longer ours (or Redis is unavailable): it is dropped."""

    def __init__(self, renew: Callable[[str, str], bool], interval: float) -> None:
        self._renew = renew
        self._interval = interval
        self._lock = threading.Lock()
        self._held: set[tuple[str, str]] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def hold(self, lock: str, token: str) -> None:
        with self._lock:
            self._held.add((lock, token))
            alive = self._thread is not None and self._thread.is_alive()
            if not alive and not self._stop.is_set():  # first lock, or after a fork
                self._thread = threading.Thread(
                    target=self._run, name="cache-lock-renewer", daemon=True
                )
                self._thread.start()

    def release(self, lock: str, token: str) -> None:
        with self._lock:
            self._held.discard((lock, token))

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            with self._lock:
                held = list(self._held)
                if not held:
                    self._thread = None  # idle: the next hold() starts a new one
                    return
            for lock, token in held:
                if not self._renew(lock, token):
                    self.release(lock, token)


class AsyncLeaseRenewer:
    """:class:`LeaseRenewer` for asyncio: one task per lock the service holds, renewing
    its lease every third of a lease until the lock is released, is no longer ours
    (or Redis is unavailable: ``renew`` returns False), or :meth:`stop`
    (``AsyncCacheService.aclose``) cancels it.  ``renew``, the service's bound method,
    is held weakly, so the service is not in a reference cycle through its renewer
    and is freed as soon as it is dropped."""

    def __init__(self, renew: Callable[[str, str], Awaitable[bool]], interval: float) -> None:
        self._renew = weakref.WeakMethod(renew)
        self._interval = interval
        #: (lock key, token) -> the task renewing its lease
        self._tasks: dict[tuple[str, str], asyncio.Task[None]] = {}

    def hold(self, lock: str, token: str) -> None:
        task = asyncio.get_running_loop().create_task(self._run(lock, token))
        self._tasks[lock, token] = task

    def release(self, lock: str, token: str) -> None:
        task = self._tasks.pop((lock, token), None)
        if task is not None:
            task.cancel()

    async def stop(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self, lock: str, token: str) -> None:
        try:
            while True:
                await asyncio.sleep(self._interval)
                renew = self._renew()
                if renew is None or not await renew(lock, token):
                    return
        finally:
            self._tasks.pop((lock, token), None)


class _Call:
    __slots__ = ("error", "event", "value")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None


class SingleFlight:
    """One computation per key at a time in this process; the others wait for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, _Call] = {}

    def do(self, key: str, fn: Callable[[], T]) -> T:
        with self._lock:
            call = self._calls.get(key)
            leader = call is None
            if call is None:
                call = self._calls[key] = _Call()
        if not leader:
            call.event.wait()
            if call.error is not None:
                raise call.error
            return call.value  # type: ignore[no-any-return]
        try:
            call.value = fn()
            return call.value  # type: ignore[no-any-return]
        except BaseException as exc:
            call.error = exc
            raise
        finally:
            with self._lock:
                del self._calls[key]
            call.event.set()


class AsyncSingleFlight:
    """Single-flight for asyncio tasks (of one event loop)."""

    def __init__(self) -> None:
        self._calls: dict[str, asyncio.Future[Any]] = {}

    async def do(self, key: str, fn: Callable[[], Awaitable[T]]) -> T:
        """Join the running computation of ``key`` or lead a new one.  A leader that
        is cancelled (its caller went away) does not cancel the tasks that joined it:
        they take over, one of them leading the next computation."""
        while (fut := self._calls.get(key)) is not None:
            try:
                return await asyncio.shield(fut)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if fut.cancelled() and (task is None or not task.cancelling()):
                    continue  # the leader was cancelled, not us
                raise
        fut = asyncio.get_running_loop().create_future()
        self._calls[key] = fut
        try:
            value = await fn()
        except asyncio.CancelledError:
            fut.cancel()
            raise
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # mark retrieved: with no follower nobody else reads it
            raise
        else:
            fut.set_result(value)
            return value
        finally:
            del self._calls[key]
