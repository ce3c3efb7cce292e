"""Errors the client raises: only for the caller's own bugs, never for Redis trouble.

Redis being down or slow is not an error for the caller (the client fails open
and counts it); a bad key, a value that cannot be serialized or a missing TTL
is a bug in the calling code and is raised at once with what was expected.
"""

from __future__ import annotations


class CacheKeyError(ValueError):
    """A key, pattern or tag that cannot be built safely (names the argument and why)."""


class CacheSerializationError(TypeError):
    """A value the serializer cannot encode (names the key type and the Python type)."""


class CacheConfigError(ValueError):
    """A client or option the service cannot work with (names the option and the fix)."""
