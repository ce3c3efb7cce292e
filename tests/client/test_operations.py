"""The ADR interface on a real Redis: values, TTL policy, counters, lists, metrics."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from exporter.client import CacheConfigError, CacheSerializationError
from exporter.metrics import ERROR_CLASSES, OPERATIONS
from tests.client.both import Cache
from tests.client.conftest import MakeCache, sample


def test_set_get_round_trips_json_and_counts_hits_and_misses(
    cache: Cache, registry: CollectorRegistry
) -> None:
    key = cache.key("user", "1")
    assert cache.get(key) is None
    assert cache.set(key, {"name": "Ada", "roles": ["admin"], "n": 1.5})
    assert cache.get(key) == {"name": "Ada", "roles": ["admin"], "n": 1.5}
    assert sample(registry, "cache_hits_total", layer="redis", type="user") == 1
    assert sample(registry, "cache_misses_total", layer="redis", type="user") == 1
    assert sample(registry, "cache_latency_seconds_count", layer="redis", operation="get") == 2
    assert sample(registry, "cache_latency_seconds_count", layer="redis", operation="set") == 1


def test_every_child_exists_at_zero_before_the_first_call(
    cache: Cache, registry: CollectorRegistry
) -> None:
    for type_name in cache.slo.type_names:
        assert sample(registry, "cache_hits_total", layer="redis", type=type_name) == 0
        assert sample(registry, "cache_misses_total", layer="redis", type=type_name) == 0
        assert sample(registry, "cache_compute_seconds_count", type=type_name) == 0
    for op in OPERATIONS:
        assert sample(registry, "cache_latency_seconds_count", layer="redis", operation=op) == 0
        for err in ERROR_CLASSES:
            labels = {"layer": "redis", "operation": op, "error": err}
            assert sample(registry, "cache_errors_total", **labels) == 0


def test_unknown_prefix_counts_as_other(cache: Cache, registry: CollectorRegistry) -> None:
    cache.get("legacy-thing:1")
    cache.get("noseparator")
    assert sample(registry, "cache_misses_total", layer="redis", type="other") == 2


@pytest.mark.parametrize("type_name", ["session", "user", "permissions", "llm-response"])
def test_set_uses_the_type_ttl_from_the_slo_file(cache: Cache, type_name: str) -> None:
    key = cache.key(type_name, "x")
    cache.set(key, 1)
    expected_ms = cache.slo.key_type(type_name).ttl.total_seconds() * 1000
    assert expected_ms - 2000 < cache.redis.pttl(key) <= expected_ms


def test_tenant_scoped_types_get_their_ttl_too(cache: Cache) -> None:
    key = cache.key("organization", "1", tenant="t1")
    cache.mset({key: 1, cache.key("session", "s"): 2})
    assert 3_598_000 < cache.redis.pttl(key) <= 3_600_000
    assert 86_398_000 < cache.redis.pttl(cache.key("session", "s")) <= 86_400_000


def test_explicit_ttl_wins(cache: Cache) -> None:
    key = cache.key("user", "1")
    cache.set(key, 1, ttl=30)
    assert 28_000 < cache.redis.pttl(key) <= 30_000


def test_other_keys_need_an_explicit_ttl(
    cache: Cache, make_cache: MakeCache, redis_url: str
) -> None:
    with pytest.raises(CacheConfigError, match=r"'other'.*expected an explicit ttl"):
        cache.set("legacy:1", 1)
    assert cache.set("legacy:1", 1, ttl=5)
    other = make_cache(redis_url, registry=CollectorRegistry(), other_ttl=7)
    other.set("legacy:2", 1)
    assert 6_000 < other.redis.pttl("legacy:2") <= 7_000
    other.close()


def test_bad_ttl_is_refused_with_the_option_name(cache: Cache) -> None:
    with pytest.raises(CacheConfigError, match="ttl: expected seconds"):
        cache.set(cache.key("user", "1"), 1, ttl=-1)


def test_incr_on_a_new_key_sets_the_type_ttl_and_keeps_it(cache: Cache) -> None:
    key = cache.key("rate-limit", "user-7", tenant="t1")
    assert cache.incr(key) == 1
    assert 58_000 < cache.redis.pttl(key) <= 60_000
    cache.redis.pexpire(key, 10_000)
    assert cache.incr(key, 5) == 6
    assert cache.decr(key) == 5
    assert cache.redis.pttl(key) <= 10_000, "incr must not extend an existing window"
    analytics = cache.key("analytics", "views", tenant="t1")
    cache.incr(analytics)
    assert 58_000 < cache.redis.pttl(analytics) <= 60_000


def test_lpush_rpop_fifo_with_ttl(cache: Cache) -> None:
    key = cache.key("analytics", "events", tenant="t1")
    assert cache.lpush(key, {"e": 1}, {"e": 2}) == 2
    assert 58_000 < cache.redis.pttl(key) <= 60_000
    assert cache.rpop(key) == {"e": 1}
    assert cache.rpop(key) == {"e": 2}
    assert cache.rpop(key) is None


def test_mget_counts_each_key_by_type(cache: Cache, registry: CollectorRegistry) -> None:
    u1, u2, s1 = cache.key("user", "1"), cache.key("user", "2"), cache.key("session", "1")
    assert cache.mset([(u1, "a"), (s1, "b")])
    assert cache.mget([u1, u2, s1, "other:1"]) == ["a", None, "b", None]
    assert sample(registry, "cache_hits_total", layer="redis", type="user") == 1
    assert sample(registry, "cache_misses_total", layer="redis", type="user") == 1
    assert sample(registry, "cache_hits_total", layer="redis", type="session") == 1
    assert sample(registry, "cache_misses_total", layer="redis", type="other") == 1
    assert sample(registry, "cache_latency_seconds_count", layer="redis", operation="mget") == 1


def test_unserializable_value_raises_naming_type_and_python_type(cache: Cache) -> None:
    with pytest.raises(CacheSerializationError, match=r"key type 'user': set is not serializable"):
        cache.set(cache.key("user", "1"), {1, 2})
    with pytest.raises(TypeError):  # CacheSerializationError is a TypeError
        cache.mset({cache.key("user", "2"): object()})
    assert cache.redis.dbsize() == 0, "nothing is written for a caller's bad value"


def test_undecodable_stored_value_is_a_counted_miss(
    cache: Cache, registry: CollectorRegistry
) -> None:
    key = cache.key("user", "1")
    cache.redis.set(key, b"\xff not json")
    assert cache.get(key) is None
    assert cache.mget([key]) == [None]
    assert (
        sample(
            registry, "cache_errors_total", layer="redis", operation="get", error="serialization"
        )
        == 1
    )
    assert (
        sample(
            registry, "cache_errors_total", layer="redis", operation="mget", error="serialization"
        )
        == 1
    )
    assert sample(registry, "cache_misses_total", layer="redis", type="user") == 2


def test_wrong_type_is_a_response_error_not_an_exception(
    cache: Cache, registry: CollectorRegistry
) -> None:
    key = cache.key("user", "1")
    cache.redis.rpush(key, b"x")
    assert cache.get(key) is None
    assert (
        sample(registry, "cache_errors_total", layer="redis", operation="get", error="response")
        == 1
    )
    assert cache.breaker.state == "closed", "a Redis that answers is not a dead Redis"


def test_delete_unlinks(cache: Cache) -> None:
    a, b = cache.key("user", "1"), cache.key("user", "2")
    cache.mset({a: 1, b: 2})
    assert cache.delete(a, b, cache.key("user", "3")) == 2
    assert cache.get(a) is None


def test_decode_responses_clients_are_refused(make_cache: MakeCache, redis_url: str) -> None:
    with pytest.raises(CacheConfigError, match="decode_responses"):
        make_cache(redis_url, decode_responses=True)


def test_services_share_metrics_on_one_registry(
    make_cache: MakeCache, redis_url: str, registry: CollectorRegistry
) -> None:
    one = make_cache(redis_url, registry=registry)
    two = make_cache(redis_url, registry=registry)
    one.get(one.key("user", "1"))
    two.get(two.key("user", "1"))
    assert sample(registry, "cache_misses_total", layer="redis", type="user") == 2
    one.close()
    two.close()


class PickleSerializer:
    """A pluggable serializer (tuples and sets survive, unlike JSON)."""

    def dumps(self, value: object) -> bytes:
        return pickle.dumps(value)

    def loads(self, data: bytes) -> object:
        return pickle.loads(data)


def test_serializer_is_pluggable(
    make_cache: MakeCache, redis_url: str, registry: CollectorRegistry
) -> None:
    cache = make_cache(redis_url, registry=registry, serializer=PickleSerializer())
    key = cache.key("user", "1")
    cache.set(key, (1, {2, 3}))
    assert cache.get(key) == (1, {2, 3})
    computed = cache.key("user", "2")
    assert cache.get_or_compute(computed, lambda: frozenset({4})) == frozenset({4})
    assert cache.get(computed) == frozenset({4})
    assert cache.mget([key, computed]) == [(1, {2, 3}), frozenset({4})]
    cache.close()


@pytest.mark.parametrize(
    "stored", [b"\x00xf\x01", b"\x00xf\x01short", b"\x00xf\x01" + b"\x00" * 16]
)
def test_truncated_get_or_compute_header_is_a_counted_miss_not_an_exception(
    cache: Cache, registry: CollectorRegistry, stored: bytes
) -> None:
    """A value starting like a get_or_compute header but too short to hold one (a
    foreign writer, a truncated value) is undecodable data, never the caller's error."""
    key = cache.key("user", "1")
    cache.redis.set(key, stored)
    assert cache.get(key) is None
    assert cache.mget([key, cache.key("user", "2")]) == [None, None]
    assert cache.get_or_compute(key, lambda: "fresh") == "fresh"
    for op in ("get", "mget", "get_or_compute"):
        assert (
            sample(
                registry, "cache_errors_total", layer="redis", operation=op, error="serialization"
            )
            >= 1
        ), op
    assert sample(registry, "cache_misses_total", layer="redis", type="user") == 4
    assert sample(registry, "cache_hits_total", layer="redis", type="user") == 0
    assert cache.get(key) == "fresh"


def test_caller_bugs_in_counters_and_lists_raise_instead_of_failing_open(
    cache: Cache, registry: CollectorRegistry
) -> None:
    """A non-int amount or an empty push is refused by Redis; swallowed as a Redis
    error it looked like "Redis down" (None): a rate limiter silently stopped limiting."""
    rl = cache.key("rate-limit", "u", tenant="t")
    for amount in (1.5, "1", True):
        with pytest.raises(CacheConfigError, match="amount"):
            cache.incr(rl, amount)  # type: ignore[arg-type]
        with pytest.raises(CacheConfigError, match="amount"):
            cache.decr(rl, amount)  # type: ignore[arg-type]
    with pytest.raises(CacheConfigError, match="values"):
        cache.lpush(cache.key("user", "q"))
    assert cache.incr(rl, 2) == 2
    for op in ("incr", "decr", "lpush"):
        assert (
            sample(registry, "cache_errors_total", layer="redis", operation=op, error="response")
            == 0
        ), op


class TextSerializer:
    """Stores str as UTF-8 and reads any bytes back as text (never refuses data)."""

    def dumps(self, value: Any) -> bytes:
        if not isinstance(value, str):
            raise TypeError(f"expected str, got {type(value).__name__}")
        return value.encode()

    def loads(self, data: bytes) -> Any:
        return data.decode("utf-8", "replace")


def test_a_serializer_that_never_refuses_still_reads_get_or_compute_values(
    make_cache: MakeCache, redis_url: str, registry: CollectorRegistry
) -> None:
    """get/mget used to try the serializer first and strip the get_or_compute header
    only when it failed: a lenient serializer returned the header as part of the value."""
    cache = make_cache(redis_url, registry=registry, serializer=TextSerializer())
    plain, computed = cache.key("user", "1"), cache.key("user", "2")
    cache.set(plain, "<p>plain</p>")
    assert cache.get_or_compute(computed, lambda: "<p>computed</p>") == "<p>computed</p>"
    assert cache.get(computed) == "<p>computed</p>"
    assert cache.mget([plain, computed]) == ["<p>plain</p>", "<p>computed</p>"]
    assert cache.get(plain) == "<p>plain</p>"
    cache.close()
