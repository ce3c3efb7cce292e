"""Values any service can read: what the client stores under a key is the JSON an
application writes by hand, read by a Node.js service through the real Redis, both
ways; early-refresh metadata lives in a companion key; legacy values still read."""

from __future__ import annotations

import json
import subprocess
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from prometheus_client import CollectorRegistry
from redis.crc import key_slot

from exporter.client import CacheSerializationError
from exporter.client.keys import KeyBuilder
from exporter.client.serialization import encode_meta, wrap
from tests.client.both import Cache
from tests.client.conftest import MakeCache, sample
from tests.support.processes import require_binary

PEER = Path(__file__).parent / "node" / "json_peer.mjs"

#: JSON an application would store: non-ASCII, escapes, control and separator
#: characters, nesting, every JSON type (no integer-like object keys: JavaScript
#: orders those first, so its JSON.stringify would reorder them)
VALUES: dict[str, Any] = {
    "object": {
        "id": 42,
        "name": "Zoë Ångström 🚀 日本語",
        "roles": ["admin", "billing"],
        "active": True,
        "manager": None,
        "score": 0.25,
        "balance": -1234.5,
        "quote": 'say "hi" \\ back/slash\n\ttab\u0001\u007f',
        "separators": "\u2028\u2029",
        "nested": {"deep": [[{"x": []}], {}]},
    },
    "list": [1, "two", 3.5, None, False, {"k": "v"}],
    "string": "plain text, not an object",
    "number": 1764434000,
    "empty": {},
}


def node_peer(
    redis_url: str, *, write: Sequence[dict[str, Any]] = (), read: Sequence[str] = ()
) -> dict[str, Any]:
    """Run the Node.js peer (JSON.stringify on write, JSON.parse on read) on the test's
    Redis; its answers per key read."""
    url = urlsplit(redis_url)
    plan = {
        "port": url.port,
        "db": int(url.path.strip("/") or 0),
        "write": list(write),
        "read": list(read),
    }
    done = subprocess.run(
        [require_binary("node"), str(PEER)],
        input=json.dumps(plan).encode(),
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return json.loads(done.stdout)["read"]  # type: ignore[no-any-return]


def by_hand(value: Any) -> bytes:
    """What an application writes by hand: ``JSON.stringify``'s layout, UTF-8."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def test_what_ours_writes_node_reads_as_the_same_object(cache: Cache, redis_url: str) -> None:
    keys = {name: cache.key("user", f"set-{name}") for name in VALUES}
    for name, value in VALUES.items():
        assert cache.set(keys[name], value)
    many = {cache.key("session", f"mset-{name}"): value for name, value in VALUES.items()}
    assert cache.mset(many)
    tagged = cache.key("organization", "tagged", tenant="t-1")
    assert cache.set_with_tags(tagged, VALUES["object"], ["org"], tenant="t-1")
    computed = {cache.key("llm-response", f"goc-{name}"): value for name, value in VALUES.items()}
    for key, value in computed.items():
        assert cache.get_or_compute(key, lambda v=value: v) == value  # type: ignore[misc]

    written = {keys[n]: v for n, v in VALUES.items()} | many | {tagged: VALUES["object"]}
    written |= computed
    meta_keys = [str(cache.keys.meta_key(k)) for k in computed]
    seen = node_peer(redis_url, read=[*written, *meta_keys])
    for key, value in written.items():
        assert seen[key].get("value") == value, (key, seen[key])
        assert cache.redis.get(key) == by_hand(value), key  # byte for byte
        assert seen[key]["stringified"] == seen[key]["text"], f"{key}: not JSON.stringify's"
    for key, meta_key in zip(computed, meta_keys, strict=True):
        # "<compute seconds> <expiry> <crc32 of the value>": any service can read it too
        delta, expiry, crc = seen[meta_key]["text"].split(" ")
        assert 0 <= float(delta) < 1 and float(expiry) > time.time(), meta_key
        assert int(crc) == zlib.crc32(by_hand(computed[key])), meta_key


def test_what_node_writes_ours_reads_with_get_mget_and_get_or_compute(
    cache: Cache, redis_url: str, registry: CollectorRegistry
) -> None:
    keys = {name: cache.key("user", f"node-{name}") for name in VALUES}
    node_peer(
        redis_url,
        write=[
            # half with a TTL, half without one (no metadata of any kind)
            {"key": keys[name], "value": value, "px": 60_000 if i % 2 else None}
            for i, (name, value) in enumerate(VALUES.items())
        ],
    )

    def must_not_run() -> Any:
        raise AssertionError("a value node wrote is a hit: the loader must not run")

    for name, value in VALUES.items():
        assert cache.get(keys[name]) == value, name
    assert cache.mget(list(keys.values())) == list(VALUES.values())
    for name, value in VALUES.items():
        assert cache.get_or_compute(keys[name], must_not_run) == value, name
    n = len(VALUES)
    assert sample(registry, "cache_hits_total", layer="redis", type="user") == 3 * n
    assert sample(registry, "cache_misses_total", layer="redis", type="user") == 0
    for op in ("get", "mget", "get_or_compute"):
        labels = {"layer": "redis", "operation": op, "error": "serialization"}
        assert sample(registry, "cache_errors_total", **labels) == 0, op


def test_our_metadata_never_judges_a_value_another_service_wrote_over_ours(
    cache: Cache, redis_url: str
) -> None:
    """The companion key carries the checksum of the value it describes: after node
    replaced the value, our old (due) metadata no longer triggers an early refresh."""
    key = cache.key("feature-flag", "beta")
    cache.get_or_compute(key, lambda: {"on": False}, ttl=60)
    meta_key = cache.keys.meta_key(key)
    assert meta_key is not None
    due = encode_meta(cache.redis.get(key), 100.0, time.time() - 1)  # surely due
    cache.redis.set(meta_key, due, px=60_000)
    node_peer(redis_url, write=[{"key": key, "value": {"on": True}, "px": 60_000}])

    def must_not_run() -> Any:
        raise AssertionError("refreshed early on metadata of another value")

    for _ in range(20):
        assert cache.get_or_compute(key, must_not_run, ttl=60) == {"on": True}


def test_legacy_values_are_still_read_and_rewritten_plain_on_refresh(
    cache: Cache, redis_url: str, registry: CollectorRegistry
) -> None:
    """Values older clients wrote (binary header + JSON) are read by get, mget and
    get_or_compute during the migration window; their header still drives XFetch, and
    the refresh writes the new format, which node reads."""
    fresh, due = cache.key("user", "legacy-fresh"), cache.key("user", "legacy-due")
    cache.redis.set(fresh, wrap(by_hand({"v": 1}), 0.01, time.time() + 3600), px=60_000)
    cache.redis.set(due, wrap(by_hand({"v": 2}), 100.0, time.time() - 1), px=60_000)
    assert cache.get(fresh) == {"v": 1}
    assert cache.mget([fresh, due]) == [{"v": 1}, {"v": 2}]
    recomputed: dict[str, Any] = {"v": "recomputed"}
    assert cache.get_or_compute(fresh, lambda: recomputed) == {"v": 1}
    assert cache.get_or_compute(due, lambda: recomputed) == recomputed
    seen = node_peer(redis_url, read=[fresh, due])
    assert "error" in seen[fresh], "a legacy value is what node cannot read"
    assert seen[due]["value"] == {"v": "recomputed"}
    labels = {"layer": "redis", "operation": "get", "error": "serialization"}
    assert sample(registry, "cache_errors_total", **labels) == 0


def test_legacy_values_false_ends_the_migration_window(
    make_cache: MakeCache, redis_url: str, registry: CollectorRegistry
) -> None:
    cache = make_cache(redis_url, registry=registry, legacy_values=False)
    key = cache.key("user", "legacy")
    cache.redis.set(key, wrap(by_hand({"v": 1}), 0.01, time.time() + 3600), px=60_000)
    assert cache.get(key) is None
    assert cache.mget([key]) == [None]
    assert cache.get_or_compute(key, lambda: {"v": "new"}) == {"v": "new"}
    for op in ("get", "mget", "get_or_compute"):  # (get_or_compute reads again under its lock)
        labels = {"layer": "redis", "operation": op, "error": "serialization"}
        assert sample(registry, "cache_errors_total", **labels) >= 1, op
    assert cache.redis.get(key) == by_hand({"v": "new"})
    cache.close()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), {"x": [-float("inf")]}])
def test_values_json_parse_cannot_read_are_refused(cache: Cache, bad: Any) -> None:
    """json.dumps would write NaN/Infinity, which is not JSON: refused as the caller's
    bug, never stored where another service's JSON.parse would throw."""
    key = cache.key("user", "nan")
    with pytest.raises(CacheSerializationError, match="not serializable"):
        cache.set(key, bad)
    with pytest.raises(CacheSerializationError, match="not serializable"):
        cache.get_or_compute(key, lambda: bad)
    assert cache.redis.get(key) is None


@pytest.mark.parametrize(
    ("key", "companion"),
    [
        ("user:42", "!xf:{user:42}"),
        ("organization:t%3A1:7", "!xf:{organization:t%3A1:7}"),
        ("app:{tenant-9}:profile", "!xf:app:{tenant-9}:profile"),
        ("a}{b}", "!xf:a}{b}"),
        ("odd{}:key", None),
        ("odd}key", None),
        ("odd{key", None),
        ("", None),
    ],
)
def test_the_companion_key_shares_the_value_s_hash_slot(key: str, companion: str | None) -> None:
    """One MGET reads value and metadata, on a cluster too; a key no companion can share
    a slot with has none (its value is never refreshed early, still cached)."""
    assert KeyBuilder.meta_key(key) == companion
    if companion is not None:
        assert key_slot(companion.encode()) == key_slot(key.encode())
