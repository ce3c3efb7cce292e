"""mget's batch classification and decoding shortcuts agree with the per-key rules."""

from __future__ import annotations

import dataclasses
import enum
from collections import Counter
from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from exporter.client.families import client_metrics
from exporter.client.instrumentation import MAX_TYPE_PASSES, Instruments
from exporter.client.recorder import column_counts
from exporter.slo import KeyType, load_slo
from tests.client.both import Cache
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
    cache: Cache, registry: CollectorRegistry
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


HOT = st.sampled_from(["user:1", "session:a", "no-type", "organization:t:1"])
EVENT_KEYS = st.one_of(
    st.none(), KEY, HOT, st.binary(max_size=6), st.lists(st.one_of(KEY, HOT), max_size=6)
)


@given(st.lists(EVENT_KEYS, max_size=60))
def test_queued_events_count_as_classifying_every_key(column: list[object]) -> None:
    """The recorder's bulk counting (lists per event, hot keys once, bytes as other)
    gives what classifying each key would."""
    expected: Counter[object] = Counter()
    for item in column:
        keys = [] if item is None else item if isinstance(item, list) else [item]
        for key in keys:
            expected[INSTRUMENTS.classify(key) if isinstance(key, str) else INSTRUMENTS.other] += 1
    assert column_counts(INSTRUMENTS, tuple(column)) == dict(expected)  # type: ignore[arg-type]


MANY = dataclasses.replace(
    load_slo(),
    key_types=tuple(
        KeyType(f"t{n}", f"p{n}" if n % 3 else f"p{n // 3}x", timedelta(minutes=1), False)
        for n in range(MAX_TYPE_PASSES + 8)
    ),
)
MANY_INSTRUMENTS = Instruments(client_metrics(CollectorRegistry()), MANY, None)
MANY_KEY = st.one_of(
    st.sampled_from([f"{kt.prefix}:{n}" for kt in MANY.key_types for n in range(2)]),
    st.sampled_from([kt.prefix for kt in MANY.key_types]),  # a bare prefix: other
    KEY,
)


@given(st.lists(MANY_KEY, min_size=1, max_size=40))
def test_type_counts_with_more_key_types_than_passes(keys: list[str]) -> None:
    expected = Counter(MANY_INSTRUMENTS.classify(k) for k in keys)
    assert MANY_INSTRUMENTS.type_counts(keys) == dict(expected)


def test_a_str_subclass_key_counts_by_its_prefix(cache: Cache, registry: CollectorRegistry) -> None:
    class Key(enum.StrEnum):
        ME = "user:me"

    cache.set(Key.ME, 1)
    assert list(registry.collect())  # applies the set: the get is then alone in its batch
    assert cache.get(Key.ME) == 1
    assert sample(registry, "cache_hits_total", layer="redis", type="user") == 1


def test_type_counts_never_raise_on_keys_that_are_not_str() -> None:
    user, other = INSTRUMENTS.classify("user:1"), INSTRUMENTS.other
    assert INSTRUMENTS.type_counts([]) == {}
    assert INSTRUMENTS.type_counts(["user:1", b"user:2", 3, "user:4"]) == {user: 2, other: 2}
