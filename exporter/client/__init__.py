"""The instrumented cache client: ADR-004's ``CacheService``, sync and asyncio.

    cache = CacheService.from_url("redis://cache:6379/0")      # ADR TTLs, default registry
    key = cache.key("organization", org_id, tenant=tenant_id)   # organization:{tenant}:{id}
    org = cache.get_or_compute(key, lambda: load_org(org_id))   # stampede-safe, fail-open
    cache.delete_pattern(cache.pattern("organization", tenant=tenant_id))

``AsyncCacheService`` (:mod:`exporter.client.aio`) is the hand-written source;
``CacheService`` (:mod:`exporter.client.sync`) is generated from it by
``scripts/unasync.py``; what differs by side is in ``_async_backend.py`` and
``_sync_backend.py``.  See :mod:`exporter.client.sync` for the fail-open and
cluster rules, :mod:`exporter.client.keys` for key isolation,
:mod:`exporter.client.stampede` for ``get_or_compute`` and
:mod:`exporter.client.exposition` for ``/metrics``.
Requires Redis >= 7.0 (``PEXPIRE ... NX/GT`` for TTLs of counters and tag sets).
"""

from __future__ import annotations

from exporter.client.aio import AsyncCacheService
from exporter.client.core import INVALIDATION_CHANNEL
from exporter.client.errors import CacheConfigError, CacheKeyError, CacheSerializationError
from exporter.client.keys import KeyPattern
from exporter.client.serialization import JsonSerializer, Serializer
from exporter.client.sync import CacheService

__all__ = [
    "INVALIDATION_CHANNEL",
    "AsyncCacheService",
    "CacheConfigError",
    "CacheKeyError",
    "CacheSerializationError",
    "CacheService",
    "JsonSerializer",
    "KeyPattern",
    "Serializer",
]
