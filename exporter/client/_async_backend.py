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
- the per-call deadline (:func:`deadline`, :func:`bounded_iter`): redis.asyncio's
  connection pool holds a lock while one task connects, so without a deadline
  concurrent callers of an unreachable or frozen Redis wait one connect after
  another (50 callers: 50 timeouts in a row).  Every Redis call of the service
  runs inside ``async with backend.deadline(self.deadline):``; when it expires the
  call fails as a ``timeout`` (see :func:`exporter.client.core.call_deadline`).
  ``scripts/unasync.py`` drops these blocks from the sync service, whose calls are
  bounded by redis-py's socket timeouts alone (a thread cannot be interrupted).

Like the ``redis.asyncio`` client under it, an ``AsyncCacheService`` belongs to
one event loop (its single-flight table and renewal tasks included).
"""

from __future__ import annotations

import asyncio
import contextlib
from asyncio import sleep
from collections.abc import AsyncIterable, AsyncIterator, Callable
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
    "Handler",
    "InvalidationHandler",
    "bounded_iter",
    "call_handler",
    "deadline",
    "no_retries",
    "publish",
    "refuse_cluster_pubsub",
    "sleep",
    "wait_ready",
]

M = TypeVar("M")
T = TypeVar("T")

#: a subscriber's handler: called with each decoded message in the listener task;
#: it may be a coroutine function (its coroutine is awaited)
Handler = Callable[[Any], Any]
#: an ``on_invalidate`` handler (sync or async), given each invalidation message
InvalidationHandler = Callable[[dict[str, Any]], Any]


#: ``async with deadline(seconds):`` cancels the Redis call inside after ``seconds``
#: (``None``: never) and raises ``TimeoutError`` (counted as ``timeout``) in its place
#: (``asyncio.timeout`` itself: no wrapper frame on the hot path)
deadline = asyncio.timeout


async def bounded_iter(items: AsyncIterable[T], seconds: float | None) -> AsyncIterator[T]:
    """``items`` (e.g. ``scan_iter``), each step within ``seconds``: a long scan is
    bounded per round trip, not as a whole."""
    it = aiter(items)
    while True:
        try:
            async with deadline(seconds):
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
