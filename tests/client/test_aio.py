"""AsyncCacheService: the same interface as CacheService, over redis.asyncio.

Its behaviour is tested by every test of ``tests/client`` using the ``cache`` or
``make_cache`` fixtures (parameter id ``async``: see :mod:`tests.client.both`); the
tests here and the few marked asyncio-only elsewhere are about what only it has.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from exporter.client import AsyncCacheService, CacheService
from tests.client.both import BlockingCache, Portal


def public(cls: type) -> dict[str, Any]:
    return {name: getattr(cls, name) for name in dir(cls) if not name.startswith("_")}


def test_the_async_service_has_the_sync_interface_with_coroutines_for_io() -> None:
    """The blocking facade forwards whatever the async service has: this is what makes
    the shared tests cover the whole of it (``close`` is ``aclose`` there)."""
    sync, aio = public(CacheService), public(AsyncCacheService)
    assert set(sync) - {"close"} == set(aio) - {"aclose"}
    pure = {"key", "pattern", "type_of", "from_url"}
    for name, method in sync.items():
        if not callable(method) or name == "close":
            continue
        amethod = aio[name]
        assert inspect.iscoroutinefunction(amethod) == (name not in pure), name
        params = inspect.signature(method).parameters.values()
        aparams = inspect.signature(amethod).parameters.values()
        assert [(p.name, p.kind, p.default) for p in params] == [
            (p.name, p.kind, p.default) for p in aparams
        ], name


def test_the_facade_refuses_calls_from_its_own_loop(redis_url: str) -> None:
    """A handler calling the facade on the loop thread would deadlock: it fails fast."""
    portal = Portal()
    try:
        cache = BlockingCache.from_url(portal, redis_url, registry=CollectorRegistry())
        with pytest.raises(RuntimeError, match="own event loop"):
            portal.run(cache.get, cache.key("user", "1"))
        cache.close()
    finally:
        portal.stop()
