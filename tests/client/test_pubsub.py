"""Pub/sub: delivery (sync and asyncio), reconnect after a Redis restart, invalidation channel."""

from __future__ import annotations

import asyncio
import queue
import time
from collections.abc import Callable
from typing import Any

import redis
from prometheus_client import CollectorRegistry

from exporter.client import INVALIDATION_CHANNEL, AsyncCacheService
from tests.client.both import Cache, background
from tests.client.conftest import MakeCache, sample
from tests.support.processes import RedisServer


def take(q: queue.Queue[Any], timeout: float = 5.0) -> Any:
    return q.get(timeout=timeout)


def test_delivery(cache: Cache) -> None:
    got: queue.Queue[Any] = queue.Queue()
    sub = cache.subscribe("events", got.put)
    assert sub.ready.is_set()
    assert cache.publish("events", {"n": 1}) == 1
    assert take(got) == {"n": 1}
    sub.stop()


def test_listener_reconnects_after_redis_restart(
    make_cache: MakeCache, registry: CollectorRegistry, redis_factory: Callable[..., RedisServer]
) -> None:
    server = redis_factory()
    cache = make_cache(server.url, registry=registry)
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
    cache: Cache, registry: CollectorRegistry
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
    cache: Cache, make_cache: MakeCache, redis_url: str
) -> None:
    other = make_cache(redis_url, registry=CollectorRegistry())
    theirs: queue.Queue[Any] = queue.Queue()
    mine: queue.Queue[Any] = queue.Queue()
    sub_other = other.on_invalidate(theirs.put)
    sub_mine = cache.on_invalidate(mine.put)
    key = cache.key("organization", "1", tenant="t")
    cache.set_with_tags(key, 1, ["org"], tenant="t")
    assert cache.invalidate_tag("org", tenant="t") == 1
    message = take(theirs)
    assert message["keys"] == [key] and message["tags"] == ["org"] and message["tenant"] == "t"
    cache.delete(cache.key("user", "1"), broadcast=True)
    assert take(theirs)["keys"] == ["user:1"]
    assert mine.empty(), "an instance does not get its own broadcasts back"
    sub_other.stop()
    sub_mine.stop()
    other.close()


# asyncio-only: coroutine handlers
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


def test_close_stops_listeners_and_their_connections(
    make_cache: MakeCache, redis_url: str, registry: CollectorRegistry
) -> None:
    """Listeners are threads (sync) or tasks (asyncio): close() must end them all."""
    cache = make_cache(redis_url, registry=registry)
    idle = background(cache)
    subs = [cache.subscribe("events", lambda m: None), cache.on_invalidate(lambda m: None)]
    assert all(s.ready.is_set() for s in subs)
    assert background(cache) - idle, "the listeners run in the background"
    cache.close()
    assert not background(cache) - idle, "close() left listeners running"
    assert _wait_for(lambda: _subscribers(redis_url, "events") == 0), "listener still subscribed"
    assert _subscribers(redis_url, INVALIDATION_CHANNEL) == 0
