"""Client fixtures: a fresh metrics registry and services on the session's real Redis.

``cache`` and ``make_cache`` are parametrized: each test using them runs once with a
``CacheService`` (id ``sync``) and once with an ``AsyncCacheService`` behind the blocking
facade of :mod:`tests.client.both` (id ``async``).  ``sync_cache`` and ``acache`` are
the plain services, for the few tests that are about one side only.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from exporter.client import AsyncCacheService, CacheService
from tests.client.both import BlockingCache, Cache, Portal

#: ``make_cache(url, **options)``: ``from_url`` of the service under test
MakeCache = Callable[..., Cache]


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture(params=["sync", "async"])
def side(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def async_xfail(reason: str) -> pytest.MarkDecorator:
    """Run a test on both sides, expecting the async one to fail: a real difference of
    AsyncCacheService (``reason`` says which), not a test or facade problem."""
    xfail = pytest.mark.xfail(strict=True, reason=f"AsyncCacheService: {reason}")
    return pytest.mark.parametrize("side", ["sync", pytest.param("async", marks=xfail)])


@pytest.fixture
def make_cache(side: str) -> Iterator[MakeCache]:
    """``from_url`` of the service under test; what it made and the test left open is
    closed afterwards (async side: all on one event loop, in its own thread)."""
    portal = Portal() if side == "async" else None
    made: list[weakref.ref[Any]] = []

    def make(url: str, **options: Any) -> Cache:
        service: Any
        if portal is None:
            service = CacheService.from_url(url, **options)
        else:
            service = BlockingCache.from_url(portal, url, **options)
        made.append(weakref.ref(service))
        return service  # type: ignore[no-any-return]

    yield make
    left: list[str] = []
    try:
        for ref in made:
            service = ref()
            if service is not None:
                service.close()
    finally:
        if portal is not None:
            left = portal.stop()
    assert not left, f"tasks still running after every service's aclose(): {left}"


@pytest.fixture
def cache(make_cache: MakeCache, redis_url: str, registry: CollectorRegistry) -> Cache:
    return make_cache(redis_url, registry=registry)


@pytest.fixture
def sync_cache(redis_url: str, registry: CollectorRegistry) -> Iterator[CacheService]:
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
