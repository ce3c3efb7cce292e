"""Value (de)serialization: JSON by default, pluggable.

Values written by ``get_or_compute`` carry a small binary header before the
payload (compute time and expiry, for XFetch early refresh); :func:`unwrap`
strips it so ``get`` reads both kinds.  The header starts with a NUL byte,
which neither JSON nor pickle output starts with.
"""

from __future__ import annotations

import json
import struct
from typing import Any, Protocol

from exporter.client.errors import CacheSerializationError

MAGIC = b"\x00xf\x01"
_HEADER = struct.Struct("!dd")  # compute seconds (delta), expiry (unix time)
HEADER_SIZE = len(MAGIC) + _HEADER.size


class Serializer(Protocol):
    """Turns values into bytes and back; ``loads`` raises on undecodable data."""

    def dumps(self, value: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


class JsonSerializer:
    """Compact UTF-8 JSON; only JSON types round-trip (tuples come back as lists)."""

    def __init__(self) -> None:
        # json.dumps() with options builds a new encoder per call; build it once
        self._encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

    def dumps(self, value: Any) -> bytes:
        return self._encode(value).encode("utf-8")

    #: json.loads itself, not a wrapper: mget decodes 100 values per call
    loads = staticmethod(json.loads)


def encode(serializer: Serializer, value: Any, key_type: str) -> bytes:
    """Serialize or raise :class:`CacheSerializationError` naming the type (caller's bug)."""
    try:
        return serializer.dumps(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise CacheSerializationError(
            f"value for key type {key_type!r}: {type(value).__name__} is not serializable "
            f"by {type(serializer).__name__} ({exc})"
        ) from exc


def wrap(payload: bytes, delta: float, expiry: float) -> bytes:
    return MAGIC + _HEADER.pack(delta, expiry) + payload


def unwrap(data: bytes) -> tuple[bytes, float, float]:
    """(payload, delta, expiry); delta and expiry are 0 for plain values.

    Data too short to hold a header is returned whole, as a plain value: the
    serializer then refuses it (a counted undecodable value), never a crash."""
    if data[:4] == MAGIC and len(data) >= HEADER_SIZE:
        delta, expiry = _HEADER.unpack_from(data, len(MAGIC))
        return data[HEADER_SIZE:], delta, expiry
    return data, 0.0, 0.0
