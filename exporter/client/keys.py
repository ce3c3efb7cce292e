"""Build tenant-isolated keys and the glob patterns that match them.

A key is ``{prefix}:{tenant}:{part}...`` for tenant-scoped types and
``{prefix}:{part}...`` otherwise (ADR-004).  Every segment (tenant and parts)
is percent-encoded for ``%``, ``:``, the glob metacharacters ``* ? [ ] \\`` and
the cluster hash-tag braces ``{ }``, so a segment never holds a raw separator
or metacharacter.  Hence:

* different (type, tenant, parts) never build the same key (the encoding is
  injective and ``:`` only ever separates segments);
* a pattern is literal segments plus one trailing ``*`` after a ``:``, so the
  pattern for one tenant cannot match another tenant's key.

Strings only: a non-string part is refused rather than ``1`` and ``"1"``
guessed equal.  The client's own keys (locks, tag sets, version counters,
``get_or_compute``'s early-refresh metadata) start
with ``!``, which no SLO key-type prefix may contain, and versioned keys end in
a segment ``key()`` can never produce (a ``%`` not followed by two hex digits).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from exporter.client.errors import CacheKeyError
from exporter.slo import COMPANION_PREFIX, SLO, KeyType

SEPARATOR = ":"
#: characters percent-encoded inside a segment
ENCODED_CHARS = "%:*?[]\\{}"
_ENCODE_TABLE = {ord(c): f"%{ord(c):02X}" for c in ENCODED_CHARS}
_GLOB_META = re.compile(r"[*?\[\]\\]")

#: prefixes of the client's own bookkeeping keys; ``!`` is not allowed in an
#: SLO key-type prefix, so they never collide with (or classify as) a key type
LOCK_PREFIX = "!lock"
TAG_PREFIX = "!tag"
VERSION_PREFIX = "!version"
META_PREFIX = COMPANION_PREFIX


def encode_segment(value: object, what: str) -> str:
    """Percent-encode one segment; refuse non-strings and unencodable text."""
    if not isinstance(value, str):
        raise CacheKeyError(
            f"{what}: expected a str, got {type(value).__name__} {value!r} "
            "(convert ids to str yourself so 1 and '1' are not silently the same key)"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise CacheKeyError(f"{what}: expected text encodable as UTF-8, got {value!r}") from None
    return value.translate(_ENCODE_TABLE)


@dataclass(frozen=True)
class KeyBuilder:
    """Keys and patterns for the key types of one SLO file."""

    slo: SLO

    def key_type(self, type_name: str) -> KeyType:
        try:
            return self.slo.key_type(type_name)
        except KeyError as exc:
            raise CacheKeyError(f"type: {exc.args[0]}") from None

    def _head(self, kt: KeyType, tenant: str | None) -> list[str]:
        if kt.tenant_scoped:
            if tenant is None:
                raise CacheKeyError(
                    f"tenant: key type {kt.name!r} is tenant-scoped; expected tenant=<tenant id>"
                )
            return [kt.prefix, encode_segment(tenant, "tenant")]
        if tenant is not None:
            raise CacheKeyError(
                f"tenant: key type {kt.name!r} is global (tenant_scoped: false in "
                f"{self.slo.source}); expected no tenant, got {tenant!r}"
            )
        return [kt.prefix]

    def key(self, type_name: str, *parts: str, tenant: str | None = None) -> str:
        """The key for ``parts`` of ``type_name`` (at least one part)."""
        kt = self.key_type(type_name)
        if not parts:
            raise CacheKeyError(f"parts: key type {kt.name!r} needs at least one id part")
        head = self._head(kt, tenant)
        head.extend(encode_segment(p, f"parts[{i}]") for i, p in enumerate(parts))
        return SEPARATOR.join(head)

    def pattern(self, type_name: str, *parts: str, tenant: str | None = None) -> KeyPattern:
        """Glob matching every key ``key(type_name, *parts, *more, tenant=tenant)``
        with at least one more part: omitted trailing parts mean "any suffix"."""
        kt = self.key_type(type_name)
        head = self._head(kt, tenant)
        head.extend(encode_segment(p, f"parts[{i}]") for i, p in enumerate(parts))
        return KeyPattern(SEPARATOR.join(head) + SEPARATOR + "*")

    def check_pattern(self, pattern: str) -> KeyPattern:
        """Accept a pattern only if ``pattern()`` could have built it.  A
        :class:`KeyPattern` is checked too: anyone can construct one by hand."""
        if not isinstance(pattern, str) or not pattern.endswith(SEPARATOR + "*"):
            raise CacheKeyError(
                f"pattern: expected a pattern built by cache.pattern(...) ending in ':*', "
                f"got {pattern!r}"
            )
        body = pattern[:-2]
        if _GLOB_META.search(body):
            raise CacheKeyError(
                f"pattern: expected glob characters only as the final '*' "
                f"(build it with cache.pattern(...)), got {pattern!r}"
            )
        segments = body.split(SEPARATOR)
        kt = next((k for k in self.slo.key_types if k.prefix == segments[0]), None)
        if kt is None:
            known = ", ".join(k.prefix for k in self.slo.key_types)
            raise CacheKeyError(
                f"pattern: expected a key-type prefix ({known}) as first segment, got {pattern!r}"
            )
        if kt.tenant_scoped and len(segments) < 2:
            raise CacheKeyError(
                f"pattern: key type {kt.name!r} is tenant-scoped; expected a tenant segment "
                f"(cache.pattern({kt.name!r}, tenant=...)), got {pattern!r}"
            )
        return pattern if isinstance(pattern, KeyPattern) else KeyPattern(pattern)

    def tenant_of(self, key: str) -> tuple[KeyType | None, str | None]:
        """(key type, encoded tenant segment or None) of a key built by :meth:`key`."""
        segments = key.split(SEPARATOR)
        kt = next((k for k in self.slo.key_types if k.prefix == segments[0]), None)
        if kt is None or not kt.tenant_scoped or len(segments) < 3:
            return kt, None
        return kt, segments[1]

    def tag_key(self, tag: str, tenant: str | None) -> str:
        """Key of the set holding a tag's members; tenant tags live in the tenant's space."""
        name = encode_segment(tag, "tag")
        if tenant is None:
            return f"{TAG_PREFIX}:g:{name}"
        return f"{TAG_PREFIX}:t:{encode_segment(tenant, 'tenant')}:{name}"

    def check_tag_member(self, key: str, tenant: str | None) -> None:
        """A tenant's tag may only hold that tenant's keys (so invalidating it cannot
        delete another tenant's or a global key)."""
        if tenant is None:
            return
        kt, key_tenant = self.tenant_of(key)
        if kt is None or key_tenant != encode_segment(tenant, "tenant"):
            raise CacheKeyError(
                f"key: a tag of tenant {tenant!r} may only hold that tenant's keys "
                f"(built with cache.key(<tenant-scoped type>, ..., tenant={tenant!r})), "
                f"got {key!r}"
            )

    @staticmethod
    def lock_key(key: str) -> str:
        return f"{LOCK_PREFIX}:{key}"

    @staticmethod
    def meta_key(key: str) -> str | None:
        """Name of the companion key holding ``key``'s early-refresh metadata, in the same
        cluster hash slot as ``key`` (so one MGET reads both): ``!xf:{key}`` for a key
        without braces, ``!xf:key`` for a key with a hash tag of its own.  ``None`` for
        the keys no companion can share a slot with (braces but no valid hash tag, or
        empty): such values are simply never refreshed early."""
        if "{" not in key and "}" not in key:
            return f"{META_PREFIX}:{{{key}}}" if key else None
        start = key.find("{")
        end = key.find("}", start + 1) if start >= 0 else -1
        if end > start + 1:  # a non-empty hash tag: the companion has the same one
            return f"{META_PREFIX}:{key}"
        return None

    @staticmethod
    def version_key(key: str) -> str:
        return f"{VERSION_PREFIX}:{key}"

    @staticmethod
    def with_version(key: str, version: int | str) -> str:
        """``key`` plus a version segment ``%v<n>`` that :meth:`key` can never produce
        (``version`` is a counter or a one-off ``u<hex>`` used when the counter is unknown)."""
        return f"{key}{SEPARATOR}%v{version}"


class KeyPattern(str):
    """A glob built by :meth:`KeyBuilder.pattern`.  ``delete_pattern`` still checks
    every pattern it is given, this type included."""

    __slots__ = ()
