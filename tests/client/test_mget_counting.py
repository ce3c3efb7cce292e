"""mget's batch classification and decoding shortcuts agree with the per-key rules."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from exporter.client import CacheService
from exporter.client.instrumentation import Instruments
from exporter.metrics import client_metrics
from exporter.slo import load_slo
from tests.client.conftest import sample

INSTRUMENTS = Instruments(client_metrics(CollectorRegistry()), load_slo(), None)
PREFIXES = [kt.prefix for kt in load_slo().key_types]
# prefixes, separators and newlines (the batch check joins keys with newlines)
PART = st.one_of(st.sampled_from([*PREFIXES, "", "x", "\n", ":", "\n:", ":\n"]), st.text())
KEY = st.lists(PART, min_size=1, max_size=4).map("".join)


@given(st.lists(KEY, min_size=1, max_size=30))
def test_type_counts_matches_classify_for_every_key(keys: list[str]) -> None:
    expected = Counter(INSTRUMENTS.classify(k) for k in keys)
    assert INSTRUMENTS.type_counts(keys) == dict(expected)


@given(st.sampled_from(PREFIXES), st.lists(st.text(), min_size=1, max_size=30))
def test_type_counts_of_one_type_batches(prefix: str, parts: list[str]) -> None:
    keys = [f"{prefix}:{p}" for p in parts]
    expected = Counter(INSTRUMENTS.classify(k) for k in keys)
    assert INSTRUMENTS.type_counts(keys) == dict(expected)


def test_mget_mixes_plain_computed_missing_and_undecodable_values(
    cache: CacheService, registry: CollectorRegistry
) -> None:
    users = [cache.key("user", str(n)) for n in range(6)]
    cache.set(users[0], {"plain": 1})
    cache.get_or_compute(users[1], lambda: {"computed": 2})
    cache.redis.set(users[2], b"\xff not json")
    cache.set(users[4], None)  # a stored JSON null reads as None but is a hit
    assert cache.get_or_compute(users[5], lambda: [5]) == [5]
    # one type: counted in one step
    got = cache.mget(users)
    assert got == [{"plain": 1}, {"computed": 2}, None, None, None, [5]]
    assert sample(registry, "cache_hits_total", layer="redis", type="user") == 4
    assert sample(registry, "cache_misses_total", layer="redis", type="user") == 2 + 2
    errors = {"layer": "redis", "operation": "mget", "error": "serialization"}
    assert sample(registry, "cache_errors_total", **errors) == 1
    # several types: counted per key
    session = cache.key("session", "s")
    cache.get_or_compute(session, lambda: "s")
    assert cache.mget([session, *users[1:4], "other:1"]) == ["s", {"computed": 2}, None, None, None]
    assert sample(registry, "cache_hits_total", layer="redis", type="session") == 1
    assert sample(registry, "cache_hits_total", layer="redis", type="user") == 4 + 1
    assert sample(registry, "cache_misses_total", layer="redis", type="user") == 4 + 2
    assert sample(registry, "cache_misses_total", layer="redis", type="other") == 1
    assert sample(registry, "cache_errors_total", **errors) == 2
