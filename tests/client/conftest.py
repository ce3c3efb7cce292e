"""Client fixtures: a fresh metrics registry and services on the session's real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from prometheus_client import CollectorRegistry

from exporter.client import AsyncCacheService, CacheService


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def cache(redis_url: str, registry: CollectorRegistry) -> Iterator[CacheService]:
    service = CacheService.from_url(redis_url, registry=registry)
    yield service
    service.close()


@pytest.fixture
async def acache(redis_url: str, registry: CollectorRegistry) -> AsyncIterator[AsyncCacheService]:
    service = AsyncCacheService.from_url(redis_url, registry=registry)
    yield service
    await service.aclose()


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """A sample's value; fails (rather than reading None as 0) if the series is missing."""
    value = registry.get_sample_value(name, labels)
    assert value is not None, f"no series {name}{labels}"
    return value
