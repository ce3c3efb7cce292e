"""cache-slo-exporter: measure and enforce a Redis cache's SLOs.

The instrumented client (``CacheService``, ``AsyncCacheService``) is
re-exported here from ``exporter.client``, loaded on first use: importing the
SLO model, the rule generator or the dashboards must not load redis-py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from exporter.slo import SLO, KeyType, LatencySLO, SLOError, load_slo

if TYPE_CHECKING:
    from exporter.client import AsyncCacheService, CacheService

__all__ = [
    "SLO",
    "AsyncCacheService",
    "CacheService",
    "KeyType",
    "LatencySLO",
    "SLOError",
    "load_slo",
]
__version__ = "0.1.0"

_CLIENT_NAMES = frozenset({"AsyncCacheService", "CacheService"})


def __getattr__(name: str) -> Any:
    if name in _CLIENT_NAMES:
        from exporter import client

        return getattr(client, name)
    raise AttributeError(f"module 'exporter' has no attribute {name!r}")
