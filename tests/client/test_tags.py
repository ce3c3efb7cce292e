"""Tags, versions and delete_pattern: across instances, tenant-isolated, self-cleaning."""

from __future__ import annotations

import time

import pytest
import redis
from prometheus_client import CollectorRegistry

from exporter.client import CacheConfigError, CacheKeyError, KeyPattern
from tests.client.both import Cache, redis_hook
from tests.client.conftest import MakeCache, sample


@pytest.fixture
def other(make_cache: MakeCache, redis_url: str) -> Cache:
    """A second instance (another app server) on the same Redis."""
    return make_cache(redis_url, registry=CollectorRegistry())


def test_invalidation_by_one_instance_is_seen_by_the_other(cache: Cache, other: Cache) -> None:
    org = cache.key("organization", "1", tenant="t1")
    org_list = cache.key("organization", "list", tenant="t1")
    untagged = cache.key("organization", "2", tenant="t1")
    cache.set_with_tags(org, {"id": 1}, ["org:1", "tenant"], tenant="t1")
    cache.set_with_tags(org_list, [1], ["tenant"], tenant="t1")
    cache.set(untagged, 2)
    assert other.invalidate_tag("tenant", tenant="t1") == 2
    assert cache.get(org) is None and cache.get(org_list) is None
    assert cache.get(untagged) == 2
    assert other.invalidate_tag("org:1", tenant="t1") == 0, "already gone, nothing to do"
    assert not cache.redis.keys("!tag:*"), "invalidated tag sets are removed"


def test_a_tenant_cannot_invalidate_another_tenants_tag(cache: Cache) -> None:
    a = cache.key("organization", "1", tenant="a")
    b = cache.key("organization", "1", tenant="b")
    cache.set_with_tags(a, "A", ["profile"], tenant="a")
    cache.set_with_tags(b, "B", ["profile"], tenant="b")
    cache.invalidate_tag("profile", tenant="a")
    assert cache.get(a) is None
    assert cache.get(b) == "B"


@pytest.mark.parametrize(
    ("key_tenant", "key_type"), [("b", "organization"), (None, "session"), ("a:x", "organization")]
)
def test_a_tenant_tag_only_holds_that_tenants_keys(
    cache: Cache, key_tenant: str | None, key_type: str
) -> None:
    key = cache.key(key_type, "1", tenant=key_tenant)
    with pytest.raises(CacheKeyError, match="tag of tenant 'a' may only hold"):
        cache.set_with_tags(key, 1, ["t"], tenant="a")


def test_tag_set_ttl_covers_its_longest_member(cache: Cache) -> None:
    long_key = cache.key("organization", "1", tenant="t")
    short_key = cache.key("rate-limit", "x", tenant="t")
    cache.set_with_tags(long_key, 1, ["mix"], tenant="t")  # 1h
    tag = cache.keys.tag_key("mix", "t")
    assert 3_598_000 < cache.redis.pttl(tag) <= 3_600_000
    cache.set_with_tags(short_key, 1, ["mix"], tenant="t")  # 1m must not shorten it
    assert 3_598_000 < cache.redis.pttl(tag) <= 3_600_000
    cache.set_with_tags(cache.key("organization", "2", tenant="t"), 1, ["mix"], 7200, tenant="t")
    assert 7_198_000 < cache.redis.pttl(tag) <= 7_200_000


def test_stale_members_are_pruned(
    make_cache: MakeCache, redis_url: str, registry: CollectorRegistry
) -> None:
    cache = make_cache(redis_url, registry=registry, prune_every=4)
    tag = cache.keys.tag_key("mixed", None)
    cache.set_with_tags(cache.key("user", "long"), 0, ["mixed"], ttl=60)
    for n in range(2):
        cache.set_with_tags(cache.key("user", str(n)), n, ["mixed"], ttl=0.05)
    time.sleep(0.1)  # both short members expire; the tag set lives as long as "long"
    assert cache.redis.scard(tag) == 3
    cache.set_with_tags(cache.key("user", "live"), 1, ["mixed"], ttl=60)  # 4th write prunes
    assert cache.redis.smembers(tag) == {b"user:long", b"user:live"}
    cache.set_with_tags(cache.key("user", "9"), 1, ["mixed"], ttl=0.05)
    time.sleep(0.1)
    assert cache.prune_tag("mixed") == 1
    assert cache.redis.scard(tag) == 2
    cache.close()


def test_tag_set_expires_with_its_members(cache: Cache) -> None:
    cache.set_with_tags(cache.key("user", "1"), 1, ["brief"], ttl=0.05)
    time.sleep(0.1)
    assert not cache.redis.exists(cache.keys.tag_key("brief", None))


def test_version_bump_moves_readers_to_a_new_key(cache: Cache, other: Cache) -> None:
    v0 = cache.versioned_key("organization", "1", tenant="t")
    cache.set(v0, {"name": "old"})
    assert other.get(other.versioned_key("organization", "1", tenant="t")) == {"name": "old"}
    assert other.bump_version("organization", "1", tenant="t") == 1
    v1 = cache.versioned_key("organization", "1", tenant="t")
    assert v1 != v0 and cache.get(v1) is None
    assert cache.type_of(v1) == "organization"
    vkey = cache.keys.version_key(cache.key("organization", "1", tenant="t"))
    assert 7_198_000 < cache.redis.pttl(vkey) <= 7_200_000, "counter outlives two TTLs"
    other_tenant = cache.versioned_key("organization", "1", tenant="u")
    assert other_tenant.endswith("%v0")


def test_versioned_keys_never_collide_with_plain_keys(cache: Cache) -> None:
    versioned = cache.versioned_key("organization", "1", tenant="t")
    for parts in (("1", "%v0"), ("1", "v0"), ("1:%v0",)):
        assert cache.key("organization", *parts, tenant="t") != versioned


def test_delete_pattern_stays_inside_its_tenant(cache: Cache) -> None:
    tenants = ["a", "a*", "a:b", "b"]
    for tenant in tenants:
        for n in range(30):
            cache.set(cache.key("organization", str(n), tenant=tenant), n)
    assert cache.delete_pattern(cache.pattern("organization", tenant="a"), batch=7) == 30
    for tenant in tenants[1:]:
        assert (
            len(list(cache.redis.scan_iter(match=cache.pattern("organization", tenant=tenant))))
            == 30
        )
    assert cache.delete_pattern("organization:a%2A:*") == 30


def test_delete_pattern_refuses_raw_globs(cache: Cache) -> None:
    cache.set(cache.key("organization", "1", tenant="victim"), 1)
    for raw in ("organization:*", "organization:v*", "*"):
        with pytest.raises(CacheKeyError):
            cache.delete_pattern(raw)
    assert cache.redis.dbsize() == 1


def test_delete_pattern_never_uses_keys(cache: Cache) -> None:
    cache.redis.config_resetstat()
    cache.set(cache.key("session", "1"), 1)
    cache.delete_pattern(cache.pattern("session"))
    stats = cache.redis.info("commandstats")
    assert "cmdstat_keys" not in stats
    assert "cmdstat_scan" in stats and "cmdstat_unlink" in stats


def test_a_hand_made_key_pattern_is_checked_too(cache: Cache) -> None:
    """KeyPattern is exported, so ``KeyPattern("organization:*")`` (or one built from an
    unescaped tenant id) must not slip past the checks delete_pattern applies to str."""
    cache.set(cache.key("organization", "1", tenant="victim"), 1)
    cache.set(cache.key("session", "1"), 1)
    for raw in ("*", "organization:*", f"organization:{'*'}:*", "organization:v?ctim:*"):
        with pytest.raises(CacheKeyError):
            cache.delete_pattern(KeyPattern(raw))
    assert cache.redis.dbsize() == 2
    assert cache.delete_pattern(KeyPattern("organization:victim:*")) == 1


def test_prune_keeps_a_member_written_again_while_it_prunes(cache: Cache, other: Cache) -> None:
    """Prune reads EXISTS, then SREMs: a key another instance writes (and tags) in
    between must stay in the tag, or invalidating the tag leaves it stale."""
    key = cache.key("user", "1")
    cache.set_with_tags(key, "old", ["t"], ttl=60)
    cache.redis.delete(key)  # expired: a stale member prune may drop

    def written_again(name: str, *values: bytes) -> None:  # just before prune's SREM
        other.set_with_tags(key, "new", ["t"], ttl=60)

    with redis_hook(cache, "srem", written_again):
        cache.prune_tag("t")
    tag = cache.keys.tag_key("t", None)
    assert cache.redis.smembers(tag) == {key.encode()}
    assert 0 < cache.redis.pttl(tag) <= 60_000, "the tag set keeps a TTL"
    assert other.invalidate_tag("t") == 1
    assert cache.get(key) is None, "invalidation reached the rewritten key"


def test_a_failed_version_read_never_serves_an_old_version(
    cache: Cache, registry: CollectorRegistry
) -> None:
    """Failing open on the version read must mean a miss, not version 0: the entry of
    version 0 is still live after a bump, and serving it is serving stale data."""
    cache.set(cache.versioned_key("organization", "1", tenant="t"), "old")
    assert cache.bump_version("organization", "1", tenant="t") == 1
    cache.set(cache.versioned_key("organization", "1", tenant="t"), "new")
    vkey = cache.keys.version_key(cache.key("organization", "1", tenant="t"))

    def blip(name: str, *args: object) -> None:
        if name == vkey:
            raise redis.ConnectionError("blip")

    with redis_hook(cache, "get", blip):
        during_blip = cache.versioned_key("organization", "1", tenant="t")
    assert cache.get(during_blip) is None, "a miss, never the old version's value"
    assert cache.type_of(during_blip) == "organization"
    labels = {"layer": "redis", "operation": "version"}
    assert sample(registry, "cache_errors_total", **labels, error="connection") == 1
    cache.redis.set(vkey, b"not a number")  # a foreign writer
    corrupt = cache.versioned_key("organization", "1", tenant="t")  # no ValueError
    assert cache.get(corrupt) is None
    assert sample(registry, "cache_errors_total", **labels, error="serialization") == 1
    assert cache.get(cache.versioned_key("organization", "1", tenant="u")) is None


@pytest.mark.parametrize("batch", [0, -1, 1.5])
def test_delete_pattern_refuses_a_bad_batch_instead_of_deleting_nothing(
    cache: Cache, batch: object
) -> None:
    """A batch Redis refuses (SCAN COUNT 0) was swallowed as a Redis error: the call
    returned 0 and deleted nothing, silently (a tenant purge that never happened)."""
    cache.set(cache.key("organization", "1", tenant="t"), 1)
    with pytest.raises(CacheConfigError, match="batch"):
        cache.delete_pattern(cache.pattern("organization", tenant="t"), batch=batch)  # type: ignore[arg-type]
    assert cache.delete_pattern(cache.pattern("organization", tenant="t"), batch=1) == 1
