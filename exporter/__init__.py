"""cache-slo-exporter: measure and enforce a Redis cache's SLOs.

The instrumented client (``CacheService``, ``AsyncCacheService``) is
re-exported here once ``exporter.client`` provides it.
"""

from __future__ import annotations

from exporter.slo import SLO, KeyType, LatencySLO, SLOError, load_slo

__all__ = ["SLO", "KeyType", "LatencySLO", "SLOError", "load_slo"]
__version__ = "0.1.0"
