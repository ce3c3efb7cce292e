"""Value (de)serialization: JSON by default, pluggable.

What the client stores under a key is exactly ``serializer.dumps(value)``: with the
default :class:`JsonSerializer`, the UTF-8 JSON an application would write by hand,
which ``JSON.parse`` reads in any language.  ``get_or_compute``'s early-refresh
metadata lives in a companion key (:func:`encode_meta`, and
:meth:`exporter.client.keys.KeyBuilder.meta_key` for its name), read in the same
round trip as the value.

Migration: clients before 2026-11-29 wrote ``get_or_compute`` values with a binary
header before the payload (:data:`MAGIC`, compute time, expiry).  :func:`unwrap`
still strips it, so those values are read until they expire (at most the longest TTL
they were written with: 7 days with the shipped SLO file); ``legacy_values=False``
turns that off (docs/architecture.md, "Values any service can read").
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from typing import Any, Protocol

from exporter.client.errors import CacheSerializationError

#: start of the legacy get_or_compute header (a NUL byte: no JSON or pickle starts so)
MAGIC = b"\x00xf\x01"
_HEADER = struct.Struct("!dd")  # compute seconds (delta), expiry (unix time)
HEADER_SIZE = len(MAGIC) + _HEADER.size


class Serializer(Protocol):
    """Turns values into bytes and back; ``loads`` raises on undecodable data."""

    def dumps(self, value: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


class JsonSerializer:
    """Compact UTF-8 JSON (``JSON.stringify``'s layout); only JSON types round-trip
    (tuples come back as lists).  NaN and infinities are refused: ``json.dumps`` would
    write ``NaN``, which is not JSON and which ``JSON.parse`` rejects.  Reads accept
    whatever ``json.loads`` does (UTF-8, -16 or -32 with or without a BOM)."""

    def __init__(self) -> None:
        # json.dumps() with options builds a new encoder per call; build it once
        self._encode = json.JSONEncoder(
            separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode

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


# --- early-refresh metadata (the companion key) -----------------------------------------


def encode_meta(payload: bytes, delta: float, expiry: float) -> bytes:
    """The companion key's value: ASCII ``"<delta> <expiry> <crc32>"``, the compute
    seconds, the expiry in unix seconds and the CRC-32 of the value's bytes (say
    ``b"0.012345 1764434000.123 2868164313"``).  The checksum ties it to the value it
    was written with, so a value another service wrote over ours is never judged by
    our old expiry.  Three numbers rather than JSON: every ``get_or_compute`` hit
    parses it, and ``split`` + ``float`` cost a fraction of ``json.loads``."""
    return f"{delta:.6f} {expiry:.3f} {zlib.crc32(payload)}".encode()


def decode_meta(meta: bytes) -> tuple[float, float, int]:
    """(delta, expiry, crc32) of a companion value; (0, 0, 0) (never refreshed early)
    when it is unreadable: foreign or hostile data is never an error."""
    try:
        d, e, c = meta.split(b" ")
        delta, expiry, crc = float(d), float(e), int(c)
    except ValueError:
        return 0.0, 0.0, 0
    if not (math.isfinite(delta) and math.isfinite(expiry)):
        return 0.0, 0.0, 0
    return delta, expiry, crc


# --- the legacy header (read during the migration window) ------------------------------


def wrap(payload: bytes, delta: float, expiry: float) -> bytes:
    """The legacy format (header + payload): no longer written; tests use it to make
    the values older clients left behind."""
    return MAGIC + _HEADER.pack(delta, expiry) + payload


def unwrap(data: bytes) -> tuple[bytes, float, float]:
    """(payload, delta, expiry) of a legacy value; a plain value is returned whole,
    with delta and expiry 0.

    Data too short to hold a header is returned whole, as a plain value: the
    serializer then refuses it (a counted undecodable value), never a crash."""
    if data[:4] == MAGIC and len(data) >= HEADER_SIZE:
        delta, expiry = _HEADER.unpack_from(data, len(MAGIC))
        return data[HEADER_SIZE:], delta, expiry
    return data, 0.0, 0.0


def plain(data: bytes) -> tuple[bytes, float, float]:
    """:func:`unwrap` once the migration window is closed (``legacy_values=False``):
    every value is taken as it is."""
    return data, 0.0, 0.0
