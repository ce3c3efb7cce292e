"""TTL policy: every write gets the TTL of its key type from the SLO file.

A key that matches no key type (``other``) has no TTL in the SLO file; the
caller must pass ``ttl=`` or construct the service with ``other_ttl=``.  We
refuse rather than guess, because a forgotten TTL is an unbounded key.
"""

from __future__ import annotations

import math
from datetime import timedelta

from exporter.client.errors import CacheConfigError

Seconds = float | int | timedelta


def ttl_ms(ttl: Seconds | None, what: str = "ttl") -> int | None:
    """Milliseconds of a TTL given as seconds or a timedelta; ``None`` passes through."""
    if ttl is None:
        return None
    seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else ttl
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not math.isfinite(seconds)
        or seconds < 0.001
    ):
        raise CacheConfigError(f"{what}: expected seconds >= 0.001 or a timedelta, got {ttl!r}")
    return int(seconds * 1000)


def missing_ttl(key_type: str, slo_source: str) -> CacheConfigError:
    return CacheConfigError(
        f"ttl: key type {key_type!r} (a key matching no key type of {slo_source}) has no TTL "
        "in the SLO file; expected an explicit ttl=... or CacheService(..., other_ttl=...)"
    )
