"""Run the sync-style client tests against both services.

A test gets a :class:`~exporter.client.CacheService` or a :class:`BlockingCache`: a thin
blocking facade over an :class:`~exporter.client.AsyncCacheService` that lives on an
event loop in a background thread (a :class:`Portal`, like anyio's ``BlockingPortal``).
The facade forwards every attribute; coroutine methods run on the loop and their result
is returned.  It adapts only what the test passes or gets back:

- a sync ``get_or_compute`` loader becomes an async one running it in a worker thread
  (``asyncio.to_thread``: a blocking source must not block the loop, where the lease
  renewal runs);
- subscribe/on_invalidate handlers are passed as they are (the async API takes sync
  handlers); the subscription comes back as a :class:`BlockingSubscription`;
- ``close()`` is ``aclose()``; ``redis`` is a :class:`BlockingRedis` over the service's
  own ``redis.asyncio`` client (commands run on the loop; ``scan_iter`` gives a list).

Every service is built on the loop thread (a ``redis.asyncio`` client belongs to one
loop).  Calling a facade from its loop thread (say from a handler) would deadlock: it
raises instead.  Helpers that need to reach inside (:func:`redis_hook`,
:func:`background`) know both sides; nothing here knows service internals.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeAlias, TypeVar

from exporter.client import AsyncCacheService, CacheService

T = TypeVar("T")

#: what a test gets: a CacheService, or a BlockingCache with CacheService's interface
Cache: TypeAlias = CacheService

#: longest one facade call may take (a hung call fails the test instead of hanging it)
CALL_TIMEOUT = 120.0


class Portal:
    """An event loop running in a daemon thread; :meth:`call` runs coroutines on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="test-portal", daemon=True
        )
        self._thread.start()

    def call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """``await fn(*args, **kwargs)`` on the loop, from another thread; its result."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("a blocking facade was called from its own event loop")

        async def run() -> T:
            return await fn(*args, **kwargs)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(CALL_TIMEOUT)

    def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` (plain) on the loop thread; its result."""

        async def run() -> T:
            return fn(*args, **kwargs)

        return self.call(run)

    def stop(self) -> list[str]:
        """Cancel what is left on the loop, then stop and close it; the tasks that were
        still running (after every service's ``aclose()``: a leak)."""

        async def shutdown() -> list[str]:
            me = asyncio.current_task()
            left = [t for t in asyncio.all_tasks() if t is not me]
            for task in left:
                task.cancel()
            await asyncio.gather(*left, return_exceptions=True)
            await self.loop.shutdown_asyncgens()
            await self.loop.shutdown_default_executor()
            return [repr(t.get_coro()) for t in left]

        try:
            return self.call(shutdown)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            if not self._thread.is_alive():
                self.loop.close()


class BlockingRedis:
    """A ``redis.asyncio`` client, called from other threads as if it were sync."""

    def __init__(self, portal: Portal, client: Any) -> None:
        self._portal = portal
        self._client = client

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        async def run(*args: Any, **kwargs: Any) -> Any:
            result = attr(*args, **kwargs)
            if inspect.isawaitable(result):
                result = await result
            if hasattr(result, "__aiter__"):  # scan_iter and friends
                result = [item async for item in result]
            return result

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._portal.call(run, *args, **kwargs)

        return call


class BlockingEvent:
    """An ``asyncio.Event`` read like a ``threading.Event``."""

    def __init__(self, portal: Portal, event: asyncio.Event) -> None:
        self._portal = portal
        self._event = event

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        async def wait() -> bool:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), timeout)
            return self._event.is_set()

        return self._portal.call(wait)


class BlockingSubscription:
    """An ``AsyncSubscription`` with ``Subscription``'s interface."""

    def __init__(self, portal: Portal, subscription: Any) -> None:
        self._portal = portal
        self.subscription = subscription
        self.ready = BlockingEvent(portal, subscription.ready)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.subscription, name)

    def stop(self, timeout: float = 2.0) -> None:
        self._portal.call(asyncio.wait_for, self.subscription.stop(), timeout)


class BlockingCache:
    """An ``AsyncCacheService`` with ``CacheService``'s (blocking) interface."""

    def __init__(self, portal: Portal, service: AsyncCacheService) -> None:
        object.__setattr__(self, "portal", portal)
        object.__setattr__(self, "service", service)
        object.__setattr__(self, "redis", BlockingRedis(portal, service.redis))

    @classmethod
    def from_url(cls, portal: Portal, url: str, **options: Any) -> BlockingCache:
        return cls(portal, portal.run(AsyncCacheService.from_url, url, **options))

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.service, name)
        if inspect.iscoroutinefunction(attr):

            def call(*args: Any, **kwargs: Any) -> Any:
                return self.portal.call(attr, *args, **kwargs)

            return call
        return attr

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.service, name, value)  # e.g. a breaker with a fake clock

    def close(self) -> None:
        self.portal.call(self.service.aclose)

    def get_or_compute(self, key: str, loader: Callable[[], T], *args: Any, **kwargs: Any) -> T:
        async def load() -> T:
            return await asyncio.to_thread(loader)

        value: T = self.portal.call(self.service.get_or_compute, key, load, *args, **kwargs)
        return value

    def subscribe(self, channel: str, handler: Callable[[Any], Any], **kwargs: Any) -> Any:
        sub = self.portal.call(self.service.subscribe, channel, handler, **kwargs)
        return BlockingSubscription(self.portal, sub)

    def on_invalidate(self, handler: Callable[[dict[str, Any]], Any], **kwargs: Any) -> Any:
        sub = self.portal.call(self.service.on_invalidate, handler, **kwargs)
        return BlockingSubscription(self.portal, sub)


@contextlib.contextmanager
def redis_hook(cache: Cache, command: str, before: Callable[..., object]) -> Iterator[None]:
    """Run ``before(*args, **kwargs)`` ahead of each ``command`` the service sends through
    its client while the block runs; an exception it raises is what Redis "raised".  On
    the async side it runs in a worker thread, so it may call facades itself."""
    client: Any
    if isinstance(cache, BlockingCache):
        client = cache.service.redis
        real = getattr(client, command)

        async def hooked_async(*args: Any, **kwargs: Any) -> Any:
            await asyncio.to_thread(before, *args, **kwargs)
            return await real(*args, **kwargs)

        hooked: Callable[..., Any] = hooked_async
    else:
        client = cache.redis
        real = getattr(client, command)

        def hooked_sync(*args: Any, **kwargs: Any) -> Any:
            before(*args, **kwargs)
            return real(*args, **kwargs)

        hooked = hooked_sync
    setattr(client, command, hooked)
    try:
        yield
    finally:
        delattr(client, command)


def background(cache: Cache) -> set[object]:
    """What runs in the background now: live threads (sync side), the pending tasks of
    the service's loop (async side).  Compare two readings to see what a service left."""
    if isinstance(cache, BlockingCache):

        async def pending() -> set[object]:
            me = asyncio.current_task()
            return {t for t in asyncio.all_tasks() if t is not me and not t.done()}

        return cache.portal.call(pending)
    return set(threading.enumerate())
