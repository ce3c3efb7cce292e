"""Functions run in child processes (multiprocessing spawn imports them by name)."""

from __future__ import annotations

import time
from typing import Any

import redis
from prometheus_client import CollectorRegistry

from exporter.client import CacheService

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
    cache = CacheService.from_url(url, registry=CollectorRegistry(), lock_wait=10)
    loader = counting_loader(url, counter)
    barrier.wait()
    results.put(cache.get_or_compute(key, loader))
    cache.close()
