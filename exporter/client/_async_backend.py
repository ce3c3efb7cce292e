"""What the asyncio service does its own way; everything else is shared text.

:mod:`exporter.client.aio` (``AsyncCacheService``) is the hand-written source of
both services: ``scripts/unasync.py`` rewrites it token by token into
:mod:`exporter.client.sync` (``CacheService``), and maps this module's name to
:mod:`exporter.client._sync_backend`, which offers the same names for threads.
What differs lives here:

- sleeping (:func:`sleep`), single-flight (:class:`AsyncSingleFlight`), the lease
  renewal of ``get_or_compute``'s lock (:class:`AsyncLeaseRenewer`: a task per
  held lock) and the pub/sub listener (:class:`AsyncSubscription`: a task);
- waiting until a listener is subscribed (:func:`wait_ready`) and calling a
  handler, which may be a coroutine function (:func:`call_handler` awaits it);
- the client's retry object (:func:`no_retries`) and the cluster rules: redis-py's
  asyncio ``RedisCluster`` has no pub/sub, so :func:`refuse_cluster_pubsub`
  makes ``subscribe`` and ``on_invalidate`` refuse it with
  :class:`~exporter.client.errors.CacheConfigError`, and has no ``publish``, so
  :func:`publish` sends ``PUBLISH`` to one node (Redis Cluster forwards it to
  subscribers on every node);
- the per-call deadline (:class:`Deadlines`, :func:`bounded_iter`): redis.asyncio's
  connection pool holds a lock while one task connects, so without a deadline
  concurrent callers of an unreachable or frozen Redis wait one connect after
  another (50 callers: 50 timeouts in a row).  Every Redis call of the service
  runs inside ``with self._deadlines:``; when it expires the call fails as a
  ``timeout`` (see :func:`exporter.client.core.call_deadline`).
  ``scripts/unasync.py`` drops these blocks from the sync service, whose calls are
  bounded by redis-py's socket timeouts alone (a thread cannot be interrupted);
- a cluster's rediscovery in the background (:class:`Rediscovery`): the deadline
  also cuts short redis-py's re-reading of the cluster (``RedisCluster.initialize``:
  a connect, ``READONLY`` and ``CLUSTER SLOTS`` per seed, then ``COMMAND``), which
  starts over from nothing on the next call; on a loaded machine it can take longer
  than the deadline every time (with the first GET: 10 ms idle, a median of 270 ms and
  up to 1.1 s at a load of 14 on 2 cores), and the service would never find a
  failed-over master.
  After a connection or timeout failure the service re-reads it in a task of its
  own, which no caller's deadline cancels; callers wait for it at most their deadline.

Like the ``redis.asyncio`` client under it, an ``AsyncCacheService`` belongs to
one event loop (its single-flight table and renewal tasks included).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from asyncio import current_task, sleep
from collections.abc import AsyncIterable, AsyncIterator, Callable
from time import monotonic
from typing import Any, TypeVar

from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from exporter.client.errors import CacheConfigError
from exporter.client.pubsub import AsyncSubscription
from exporter.client.stampede import AsyncLeaseRenewer, AsyncSingleFlight

__all__ = [
    "AsyncLeaseRenewer",
    "AsyncSingleFlight",
    "AsyncSubscription",
    "Deadlines",
    "Handler",
    "InvalidationHandler",
    "Rediscovery",
    "bounded_iter",
    "call_handler",
    "no_retries",
    "publish",
    "refuse_cluster_pubsub",
    "sleep",
    "wait_ready",
]

M = TypeVar("M")
T = TypeVar("T")

log = logging.getLogger("exporter.client")

#: a subscriber's handler: called with each decoded message in the listener task;
#: it may be a coroutine function (its coroutine is awaited)
Handler = Callable[[Any], Any]
#: an ``on_invalidate`` handler (sync or async), given each invalidation message
InvalidationHandler = Callable[[dict[str, Any]], Any]


class Deadlines:
    """The per-call deadline of one service's Redis calls: ``with deadlines:`` around
    an ``await`` cancels it after ``seconds`` (``None``: never) and raises
    ``TimeoutError`` (counted as ``timeout``) in its place, like ``asyncio.timeout``.

    Why not ``asyncio.timeout`` itself: it schedules and cancels a timer handle per
    call and enters through two coroutines, about 5 µs, 7 % of a loopback ``GET``.
    Here entering and leaving are a few dict operations: one timer per service
    (per event loop), armed for the earliest deadline of the calls in flight,
    cancels the calls past theirs when it fires and re-arms itself for the next;
    a call that ends first only leaves the table, and the timer, if it fires for
    nothing, just re-arms.  A plain ``with`` works inside a coroutine: a deadline
    can only expire while its task waits at an ``await`` within the block.
    Nested blocks of one task share the outermost deadline.
    """

    __slots__ = ("_armed", "_due", "_handle", "_loop", "seconds")

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        #: task -> [deadline, its cancelling() on entry, nesting depth, expired]
        self._due: dict[asyncio.Task[Any], list[Any]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._armed = math.inf

    def __enter__(self) -> None:
        seconds = self.seconds
        if seconds is None:
            return
        task = current_task()
        if task is None:
            return  # not in a task: nothing to cancel
        entry = self._due.get(task)
        if entry is not None:
            entry[2] += 1
            return
        loop = task.get_loop()
        if loop is not self._loop:  # first use (a service belongs to one loop)
            self._due.clear()
            self._loop, self._handle, self._armed = loop, None, math.inf
        when = monotonic() + seconds  # loop.time() is a Python-level call: 3x slower
        self._due[task] = [when, task.cancelling(), 0, False]
        if when < self._armed:
            self._arm(loop, when)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        task = current_task()
        if task is None:
            return
        entry = self._due.get(task)
        if entry is None:
            return
        if entry[2]:
            entry[2] -= 1
            return
        del self._due[task]
        if entry[3] and task.uncancel() <= entry[1] and exc_type is asyncio.CancelledError:
            raise TimeoutError from exc

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        """Fire at ``when`` (``time.monotonic``), on the loop's own clock."""
        if self._handle is not None:
            self._handle.cancel()
        self._handle = loop.call_at(loop.time() + (when - monotonic()), self._fire)
        self._armed = when

    def _fire(self) -> None:
        self._handle, self._armed = None, math.inf
        loop = self._loop
        assert loop is not None
        now = monotonic()
        following = math.inf
        for task, entry in self._due.items():
            if entry[3]:
                continue
            if entry[0] <= now:
                entry[3] = True
                task.cancel()  # delivered at the await inside the block
            elif entry[0] < following:
                following = entry[0]
        if following < math.inf:
            self._arm(loop, following)


class Rediscovery:
    """Re-read a ``RedisCluster``'s nodes and slots in a task of its own, one at a time.

    :meth:`kick` (called after each connection or timeout failure, never on the hot
    path) starts ``client.initialize()`` unless one is already running; it returns at
    once when redis-py needs no re-read.  redis-py holds a lock while it initializes,
    so the calls that arrive meanwhile wait for this task (each at most its own
    deadline) instead of starting over, and the first one after it finds the new
    topology.  Each attempt is bounded by redis-py's socket timeouts per seed node;
    a failed attempt is logged and the next failure starts another.  ``None`` (not a
    cluster): does nothing.
    """

    __slots__ = ("_client", "_task")

    def __init__(self, client: Any) -> None:
        self._client = client
        self._task: asyncio.Task[None] | None = None

    def kick(self) -> None:
        if self._client is None or (self._task is not None and not self._task.done()):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on the loop: the next call re-reads it itself
            return
        self._task = loop.create_task(self._run(), name="cache-cluster-rediscovery")

    async def _run(self) -> None:
        try:
            await self._client.initialize()
        except Exception as exc:  # the cluster is still unreachable: the next failure retries
            # class name only: some messages carry node addresses and reasons at length
            log.debug("cache cluster rediscovery failed: %s", type(exc).__name__)

    async def stop(self) -> None:
        """Cancel a re-read still running (the service is closing)."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def bounded_iter(items: AsyncIterable[T], deadlines: Deadlines) -> AsyncIterator[T]:
    """``items`` (e.g. ``scan_iter``), each step within the deadline: a long scan is
    bounded per round trip, not as a whole."""
    it = aiter(items)
    while True:
        with deadlines:
            try:
                item = await anext(it)
            except StopAsyncIteration:
                return
        yield item


async def publish(client: Any, is_cluster: bool, channel: str, payload: bytes) -> Any:
    """``client.publish(channel, payload)``; on an asyncio ``RedisCluster`` (which has no
    ``publish``) ``PUBLISH`` sent to the default node: Redis Cluster propagates it to
    the subscribers of every node."""
    if is_cluster:
        return await client.execute_command(
            "PUBLISH", channel, payload, target_nodes=RedisCluster.DEFAULT_NODE
        )
    return await client.publish(channel, payload)


def no_retries() -> Retry:
    """redis.asyncio's retry object for no retries (the cache must not slow callers)."""
    return Retry(NoBackoff(), 0)


async def wait_ready(sub: AsyncSubscription, timeout: float) -> None:
    """Wait until ``sub`` is subscribed, at most ``timeout`` seconds."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(sub.ready.wait(), timeout)


async def call_handler(handler: Callable[[M], Any], message: M) -> None:
    """``handler(message)``, awaited if it returned a coroutine."""
    result = handler(message)
    if asyncio.iscoroutine(result):
        await result


def refuse_cluster_pubsub(is_cluster: bool) -> None:
    """redis.asyncio's ``RedisCluster`` has no pub/sub: refuse it."""
    if is_cluster:
        raise CacheConfigError(
            "subscribe: redis.asyncio's RedisCluster has no pub/sub; "
            "subscribe through a redis.asyncio.Redis client of one node"
        )
