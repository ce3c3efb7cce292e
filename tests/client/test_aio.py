"""AsyncCacheService: the same behaviour over redis.asyncio."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry

from exporter.client import AsyncCacheService, CacheKeyError, CacheSerializationError
from tests.client.conftest import sample
from tests.support.processes import RedisServer, free_port


async def test_round_trip_ttl_and_metrics(
    acache: AsyncCacheService, registry: CollectorRegistry
) -> None:
    key = acache.key("session", "abc")
    assert await acache.get(key) is None
    assert await acache.set(key, {"user": 1})
    assert await acache.get(key) == {"user": 1}
    assert 86_398_000 < await acache.redis.pttl(key) <= 86_400_000
    assert sample(registry, "cache_hits_total", layer="redis", type="session") == 1
    assert sample(registry, "cache_misses_total", layer="redis", type="session") == 1
    assert sample(registry, "cache_latency_seconds_count", layer="redis", operation="get") == 2


async def test_mget_mset_counters_lists(acache: AsyncCacheService) -> None:
    a, b = acache.key("user", "1"), acache.key("user", "2")
    assert await acache.mset({a: 1, b: 2})
    assert await acache.mget([a, "other:x", b]) == [1, None, 2]
    rl = acache.key("rate-limit", "u", tenant="t")
    assert await acache.incr(rl, 3) == 3
    assert await acache.decr(rl) == 2
    assert 58_000 < await acache.redis.pttl(rl) <= 60_000
    q = acache.key("analytics", "q", tenant="t")
    await acache.lpush(q, "x", "y")
    assert await acache.rpop(q) == "x"
    assert await acache.delete(a, b) == 2


async def test_tags_versions_and_patterns(acache: AsyncCacheService) -> None:
    a = acache.key("organization", "1", tenant="a")
    b = acache.key("organization", "1", tenant="b")
    await acache.set_with_tags(a, 1, ["t"], tenant="a")
    await acache.set_with_tags(b, 1, ["t"], tenant="b")
    assert await acache.invalidate_tag("t", tenant="a") == 1
    assert await acache.get(b) == 1
    with pytest.raises(CacheKeyError):
        await acache.set_with_tags(b, 1, ["t"], tenant="a")
    v0 = await acache.versioned_key("organization", "1", tenant="b")
    assert await acache.bump_version("organization", "1", tenant="b") == 1
    assert await acache.versioned_key("organization", "1", tenant="b") != v0
    assert await acache.delete_pattern(acache.pattern("organization", tenant="b")) == 1
    with pytest.raises(CacheKeyError):
        await acache.delete_pattern("organization:*")


async def test_serialization_error_is_raised(acache: AsyncCacheService) -> None:
    with pytest.raises(CacheSerializationError, match="'user'"):
        await acache.set(acache.key("user", "1"), object())


async def test_fail_open_and_recover(
    registry: CollectorRegistry, redis_factory: Callable[..., RedisServer]
) -> None:
    port = free_port()
    cache = AsyncCacheService.from_url(
        f"redis://127.0.0.1:{port}/0", registry=registry, breaker_threshold=2, breaker_cooldown=0.1
    )
    key = cache.key("user", "1")
    assert await cache.get(key) is None
    assert await cache.set(key, 1) is False
    assert await cache.get(key) is None  # skipped: breaker open

    async def load() -> str:
        return "source"

    assert await cache.get_or_compute(key, load) == "source"
    labels = {"layer": "redis", "operation": "get"}
    assert sample(registry, "cache_errors_total", **labels, error="connection") == 1
    assert sample(registry, "cache_errors_total", **labels, error="circuit_open") == 1
    redis_factory(port=port)
    await asyncio.sleep(0.15)
    assert await cache.set(key, "back")
    assert await cache.get(key) == "back"
    await cache.aclose()
