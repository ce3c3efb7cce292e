"""cache-slo-exporter: measure and enforce a Redis cache's SLOs.

The instrumented client (``CacheService``, ``AsyncCacheService``) is
re-exported here from ``exporter.client``.
"""

from __future__ import annotations

from exporter.client import AsyncCacheService, CacheService
from exporter.slo import SLO, KeyType, LatencySLO, SLOError, load_slo

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
