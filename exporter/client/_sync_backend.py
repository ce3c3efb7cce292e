"""What the sync service does its own way; everything else is shared text.

:mod:`exporter.client.sync` is generated from :mod:`exporter.client.aio` by
``scripts/unasync.py``, which maps :mod:`exporter.client._async_backend` to this
module: the same names, for threads.

- sleeping (:func:`sleep`: ``time.sleep``), single-flight (:class:`SingleFlight`:
  waiting threads share the leader's result), the lease renewal of
  ``get_or_compute``'s lock (:class:`LeaseRenewer`: one daemon thread per
  service, only while locks are held) and the pub/sub listener
  (:class:`Subscription`: a daemon thread);
- waiting until a listener is subscribed (:func:`wait_ready`) and calling a
  handler (:func:`call_handler`: a plain call, in the listener thread);
- the client's retry object (:func:`no_retries`); redis-py's sync
  ``RedisCluster`` has pub/sub, so :func:`refuse_cluster_pubsub` refuses nothing
  and :func:`publish` calls the client's own ``publish``;
- the per-call deadline: none beyond redis-py's own socket timeouts (a blocked
  thread cannot be interrupted).  A sync call waits at most the connect timeout
  plus the socket timeout (redis-py's sync pool connects outside its lock, so
  callers never queue behind each other's connects), except against a server that
  drips bytes, each within the socket timeout, and, with a client built on a
  ``BlockingConnectionPool`` (``from_url`` never builds one), the pool's own
  ``timeout`` for a free connection.  ``scripts/unasync.py`` drops the
  async service's ``with self._deadlines:`` blocks, so the sync hot path pays
  nothing for them; :class:`Deadlines` (a no-op) and :func:`bounded_iter` (the
  iterable itself) exist so the two backends offer the same names;
- a cluster's rediscovery: redis-py's sync ``RedisCluster`` re-reads the cluster
  within the call that needs it, and nothing cuts that short, so
  :class:`Rediscovery` does nothing.

A ``CacheService`` may be shared by any number of threads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from time import sleep
from typing import Any, TypeVar

from redis.backoff import NoBackoff
from redis.retry import Retry

from exporter.client.pubsub import Subscription
from exporter.client.stampede import LeaseRenewer, SingleFlight

__all__ = [
    "Deadlines",
    "Handler",
    "InvalidationHandler",
    "LeaseRenewer",
    "Rediscovery",
    "SingleFlight",
    "Subscription",
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

#: a subscriber's handler: called with each decoded message in the listener thread
Handler = Callable[[Any], None]
#: an ``on_invalidate`` handler, given each invalidation message
InvalidationHandler = Callable[[dict[str, Any]], None]


class Deadlines:
    """No deadline: the generated service never enters one (see the module docstring);
    ``seconds`` is the bound redis-py's own timeouts give a sync call."""

    __slots__ = ("seconds",)

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


class Rediscovery:
    """Nothing to do: a sync call re-reads the cluster itself, uninterrupted."""

    __slots__ = ()

    def __init__(self, client: Any) -> None:
        return None

    def kick(self) -> None:
        return None

    def stop(self) -> None:
        return None


def bounded_iter(items: Iterable[T], deadlines: Deadlines) -> Iterable[T]:
    """``items`` themselves: each round trip is bounded by redis-py's socket timeout."""
    return items


def publish(client: Any, is_cluster: bool, channel: str, payload: bytes) -> Any:
    """``client.publish(channel, payload)`` (sync ``RedisCluster`` has one too)."""
    return client.publish(channel, payload)


def no_retries() -> Retry:
    """redis-py's retry object for no retries (the cache must not slow callers)."""
    return Retry(NoBackoff(), 0)


def wait_ready(sub: Subscription, timeout: float) -> None:
    """Wait until ``sub`` is subscribed, at most ``timeout`` seconds."""
    sub.ready.wait(timeout)


def call_handler(handler: Callable[[M], None], message: M) -> None:
    """``handler(message)``."""
    handler(message)


def refuse_cluster_pubsub(is_cluster: bool) -> None:
    """redis-py's sync ``RedisCluster`` has pub/sub: nothing to refuse."""
