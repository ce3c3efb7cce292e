"""Pub/sub: delivery (sync and asyncio), reconnect after a Redis restart, invalidation channel."""

from __future__ import annotations

import asyncio
import queue
import time
from collections.abc import Callable
from typing import Any

import redis
from prometheus_client import CollectorRegistry

from exporter.client import INVALIDATION_CHANNEL, AsyncCacheService, CacheService
from tests.client.conftest import sample
from tests.support.processes import RedisServer


def take(q: queue.Queue[Any], timeout: float = 5.0) -> Any:
    return q.get(timeout=timeout)


def test_sync_delivery(cache: CacheService) -> None:
    got: queue.Queue[Any] = queue.Queue()
    sub = cache.subscribe("events", got.put)
    assert sub.ready.is_set()
    assert cache.publish("events", {"n": 1}) == 1
    assert take(got) == {"n": 1}
    sub.stop()


def test_listener_reconnects_after_redis_restart(
    registry: CollectorRegistry, redis_factory: Callable[..., RedisServer]
) -> None:
    server = redis_factory()
    cache = CacheService.from_url(server.url, registry=registry)
    got: queue.Queue[Any] = queue.Queue()
    sub = cache.subscribe("events", got.put)
    server.kill()
    deadline = time.monotonic() + 5
    while sub.ready.is_set() and time.monotonic() < deadline:
        time.sleep(0.01)
    server.start()
    assert sub.ready.wait(5), "listener re-subscribed by itself"
    assert cache.publish("events", "after restart") == 1
    assert take(got) == "after restart"
    assert sub.reconnects >= 1
    labels = {"layer": "redis", "operation": "subscribe"}
    assert sample(registry, "cache_errors_total", **labels, error="connection") >= 1
    sub.stop()
    cache.close()


def test_bad_messages_and_failing_handlers_do_not_stop_the_listener(
    cache: CacheService, registry: CollectorRegistry
) -> None:
    got: queue.Queue[Any] = queue.Queue()

    def handler(message: Any) -> None:
        if message == "boom":
            raise RuntimeError("handler bug")
        got.put(message)

    sub = cache.subscribe("events", handler)
    cache.redis.publish("events", b"\xff not json")
    cache.publish("events", "boom")
    cache.publish("events", "still here")
    assert take(got) == "still here"
    labels = {"layer": "redis", "operation": "subscribe", "error": "serialization"}
    assert sample(registry, "cache_errors_total", **labels) == 1
    sub.stop()


def test_invalidation_broadcast_reaches_other_instances_only(
    cache: CacheService, redis_url: str
) -> None:
    other = CacheService.from_url(redis_url, registry=CollectorRegistry())
    theirs: queue.Queue[Any] = queue.Queue()
    mine: queue.Queue[Any] = queue.Queue()
    sub_other = other.on_invalidate(theirs.put)
    sub_mine = cache.on_invalidate(mine.put)
    key = cache.key("organization", "1", tenant="t")
    cache.set_with_tags(key, 1, ["org"], tenant="t")
    cache.invalidate_tag("org", tenant="t")
    message = take(theirs)
    assert message["keys"] == [key] and message["tags"] == ["org"] and message["tenant"] == "t"
    cache.delete(cache.key("user", "1"), broadcast=True)
    assert take(theirs)["keys"] == ["user:1"]
    assert mine.empty(), "an instance does not get its own broadcasts back"
    sub_other.stop()
    sub_mine.stop()
    other.close()


async def test_async_delivery_with_sync_and_async_handlers(acache: AsyncCacheService) -> None:
    got: asyncio.Queue[Any] = asyncio.Queue()

    async def async_handler(message: Any) -> None:
        await got.put(("async", message))

    sub1 = await acache.subscribe("events", async_handler)
    sub2 = await acache.subscribe("events", lambda m: got.put_nowait(("sync", m)))
    assert await acache.publish("events", [1, 2]) == 2
    received = sorted([await asyncio.wait_for(got.get(), 5) for _ in range(2)])
    assert received == [("async", [1, 2]), ("sync", [1, 2])]
    await sub1.stop()
    await sub2.stop()


async def test_async_invalidation_channel(acache: AsyncCacheService, redis_url: str) -> None:
    other = AsyncCacheService.from_url(redis_url, registry=CollectorRegistry())
    got: asyncio.Queue[Any] = asyncio.Queue()
    sub = await other.on_invalidate(got.put)
    key = acache.key("organization", "1", tenant="t")
    await acache.set_with_tags(key, 1, ["org"], tenant="t")
    assert await acache.invalidate_tag("org", tenant="t") == 1
    message = await asyncio.wait_for(got.get(), 5)
    assert message["keys"] == [key]
    await sub.stop()
    await other.aclose()


def _subscribers(url: str, channel: str) -> int:
    admin = redis.Redis.from_url(url)
    try:
        pairs: Any = admin.pubsub_numsub(channel)
        return int(dict(pairs)[channel.encode()])
    finally:
        admin.close()


def _wait_for(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def test_close_stops_listener_threads_and_their_connections(
    redis_url: str, registry: CollectorRegistry
) -> None:
    cache = CacheService.from_url(redis_url, registry=registry)
    subs = [cache.subscribe("events", lambda m: None), cache.on_invalidate(lambda m: None)]
    assert all(s.ready.is_set() for s in subs)
    cache.close()
    assert not any(s._thread.is_alive() for s in subs), "close() left listener threads running"
    assert _wait_for(lambda: _subscribers(redis_url, "events") == 0), "listener still subscribed"
    assert _subscribers(redis_url, INVALIDATION_CHANNEL) == 0


async def test_aclose_stops_listener_tasks_and_their_connections(
    redis_url: str, registry: CollectorRegistry
) -> None:
    cache = AsyncCacheService.from_url(redis_url, registry=registry)
    subs = [await cache.subscribe("events", lambda m: None), await cache.on_invalidate(print)]
    tasks = [s._task for s in subs]
    assert all(t is not None and not t.done() for t in tasks)
    await cache.aclose()
    assert all(t is not None and t.done() for t in tasks), "aclose() left listener tasks running"
    assert await asyncio.to_thread(_wait_for, lambda: _subscribers(redis_url, "events") == 0)
