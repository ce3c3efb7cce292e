"""Functions run in child processes (multiprocessing spawn imports them by name)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis
import redis.asyncio
from prometheus_client import CollectorRegistry

from exporter.client import AsyncCacheService, CacheService

LOADER_SECONDS = 0.3


def counting_loader(url: str, counter: str) -> Any:
    """A slow loader that records each run in Redis (visible across processes)."""
    raw = redis.Redis.from_url(url)

    def load() -> dict[str, str]:
        raw.incr(counter)
        time.sleep(LOADER_SECONDS)
        return {"computed": "once"}

    return load


def stampede_process(url: str, key: str, counter: str, barrier: Any, results: Any) -> None:
    cache = CacheService.from_url(url, registry=CollectorRegistry(), lock_max_wait=10)
    loader = counting_loader(url, counter)
    barrier.wait()
    results.put(cache.get_or_compute(key, loader))
    cache.close()


def _timeouts(registry: CollectorRegistry) -> float:
    labels = {"layer": "redis", "operation": "get_or_compute", "error": "timeout"}
    return registry.get_sample_value("cache_errors_total", labels) or 0.0


def slow_loader_process(
    url: str,
    key: str,
    counter: str,
    barrier: Any,
    results: Any,
    lease: float,
    seconds: float,
    use_async: bool,
) -> None:
    """get_or_compute with a loader slower than the lease, default ``lock_max_wait``;
    puts (value, get_or_compute timeouts counted)."""
    registry = CollectorRegistry()
    if not use_async:
        cache = CacheService.from_url(url, registry=registry, lock_lease=lease)
        raw = redis.Redis.from_url(url)

        def load() -> dict[str, str]:
            raw.incr(counter)
            time.sleep(seconds)
            return {"computed": "once"}

        barrier.wait()
        results.put((cache.get_or_compute(key, load), _timeouts(registry)))
        cache.close()
        return

    async def main() -> None:
        acache = AsyncCacheService.from_url(url, registry=registry, lock_lease=lease)
        araw = redis.asyncio.Redis.from_url(url)

        async def load() -> dict[str, str]:
            await araw.incr(counter)
            await asyncio.sleep(seconds)
            return {"computed": "once"}

        barrier.wait()
        results.put((await acache.get_or_compute(key, load), _timeouts(registry)))
        await acache.aclose()
        await araw.aclose()

    asyncio.run(main())


def hanging_holder_process(url: str, key: str, counter: str, lease: float) -> None:
    """Takes the lock of ``key`` and never finishes its loader (the test kills it)."""
    cache = CacheService.from_url(url, registry=CollectorRegistry(), lock_lease=lease)
    raw = redis.Redis.from_url(url)

    def load() -> str:
        raw.incr(counter)
        time.sleep(600)
        return "never"

    cache.get_or_compute(key, load)


def waiter_process(
    url: str, key: str, counter: str, waiting: str, results: Any, lease: float, use_async: bool
) -> None:
    """A caller in another process; announces itself in ``waiting`` just before calling."""
    registry = CollectorRegistry()
    raw = redis.Redis.from_url(url)

    def load() -> dict[str, str]:
        raw.incr(counter)
        return {"computed": "by-waiter"}

    if not use_async:
        cache = CacheService.from_url(url, registry=registry, lock_lease=lease, lock_max_wait=120)
        raw.incr(waiting)
        results.put((cache.get_or_compute(key, load), _timeouts(registry)))
        cache.close()
        return

    async def main() -> None:
        acache = AsyncCacheService.from_url(
            url, registry=registry, lock_lease=lease, lock_max_wait=120
        )

        async def aload() -> dict[str, str]:
            return load()

        raw.incr(waiting)
        results.put((await acache.get_or_compute(key, aload), _timeouts(registry)))
        await acache.aclose()

    asyncio.run(main())
