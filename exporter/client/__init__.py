"""The instrumented cache client: ADR-004's ``CacheService``, sync and asyncio.

See :mod:`exporter.client.sync` for the fail-open and cluster rules and
:mod:`exporter.client.keys` for key isolation.
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
