"""Key and pattern isolation: hostile tenant ids and parts can never collide or cross."""

from __future__ import annotations

from urllib.parse import unquote

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.client import CacheKeyError
from exporter.client.keys import KeyBuilder
from exporter.slo import load_slo
from tests.client.both import Cache
from tests.client.stringmatch import stringmatch

SLO = load_slo()
KEYS = KeyBuilder(SLO)
SCOPED = [kt.name for kt in SLO.key_types if kt.tenant_scoped]
GLOBAL = [kt.name for kt in SLO.key_types if not kt.tenant_scoped]

HOSTILE = [*":*?[]\\%{}^-!", "a", "b", "é", "€", " ", "\x00", "%3A", "\U0001f600"]
segment = st.one_of(
    st.lists(st.sampled_from(HOSTILE), max_size=5).map("".join),
    st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=4),
)
parts = st.lists(segment, min_size=1, max_size=3).map(tuple)


@st.composite
def key_inputs(draw: st.DrawFn) -> tuple[str, str | None, tuple[str, ...]]:
    if draw(st.booleans()):
        return draw(st.sampled_from(SCOPED)), draw(segment), draw(parts)
    return draw(st.sampled_from(GLOBAL)), None, draw(parts)


def build(spec: tuple[str, str | None, tuple[str, ...]]) -> str:
    type_name, tenant, key_parts = spec
    return KEYS.key(type_name, *key_parts, tenant=tenant)


@settings(max_examples=300, deadline=None)
@given(st.lists(key_inputs(), min_size=2, max_size=8, unique=True))
def test_different_inputs_never_build_the_same_key(specs: list) -> None:
    keys = [build(s) for s in specs]
    assert len(set(keys)) == len(specs)


@settings(max_examples=500, deadline=None)
@given(key_inputs())
def test_key_splits_back_into_exactly_its_inputs(spec: tuple) -> None:
    """Injectivity, constructively: ':' splits only segments and decoding restores them."""
    type_name, tenant, key_parts = spec
    prefix, *segments = build(spec).split(":")
    assert prefix == SLO.key_type(type_name).prefix
    expected = ([] if tenant is None else [tenant]) + list(key_parts)
    assert [unquote(seg, errors="strict") for seg in segments] == expected
    assert not any(c in seg for seg in segments for c in "*?[]\\{}")


@settings(max_examples=200, deadline=None)
@given(key_inputs())
def test_key_is_classified_as_its_type(spec: tuple) -> None:
    assert SLO.type_of_key(build(spec)) == spec[0]


@st.composite
def pattern_and_key(draw: st.DrawFn) -> tuple:
    """A pattern and a key that often share type, tenant and leading parts."""
    key_spec = draw(key_inputs())
    type_name, tenant, key_parts = key_spec
    if draw(st.booleans()):  # pattern for the same type and tenant, maybe a prefix of parts
        cut = draw(st.integers(0, len(key_parts)))
        pat_parts = key_parts[:cut]
        if draw(st.booleans()) and pat_parts:
            pat_parts = (*pat_parts[:-1], draw(segment))
        pat_tenant = tenant
        if tenant is not None and draw(st.booleans()):
            pat_tenant = draw(segment)
        pat_spec = (type_name, pat_tenant, pat_parts)
    else:
        other = draw(key_inputs())
        pat_spec = (other[0], other[1], other[2][: draw(st.integers(0, len(other[2])))])
    return pat_spec, key_spec


@settings(max_examples=500, deadline=None)
@given(pattern_and_key())
def test_pattern_matches_exactly_the_keys_under_it(case: tuple) -> None:
    (ptype, ptenant, pparts), (ktype, ktenant, kparts) = case
    pattern = KEYS.pattern(ptype, *pparts, tenant=ptenant)
    key = build((ktype, ktenant, kparts))
    expected = (
        ptype == ktype
        and ptenant == ktenant
        and len(kparts) > len(pparts)
        and kparts[: len(pparts)] == pparts
    )
    assert stringmatch(pattern.encode(), key.encode()) == expected
    if ptenant != ktenant:
        assert not stringmatch(pattern.encode(), key.encode())


def test_stringmatch_port_agrees_with_redis_on_glob_syntax(redis_url: str) -> None:
    """The ported matcher is only evidence if it behaves like the server's."""
    keys = [b"a", b"ab", b"a:b", b"a*", b"a?", b"a[", b"a\\", b"[a]", b"b", b"a]b", b"ac"]
    patterns = [b"a*", b"a?", b"a[bc]", b"a[^b]", b"a\\*", b"[a-b]", b"\\[a\\]", b"a[\\]]b", b"*"]
    raw = redis.Redis.from_url(redis_url)  # the server alone: no service involved
    for k in keys:
        raw.set(k, 1)
    for p in patterns:
        server = {k for k in raw.scan_iter(match=p, count=1000)}
        ported = {k for k in keys if stringmatch(p, k)}
        assert server == ported, p
    raw.close()


HOSTILE_TENANTS = ["a", "a*", "a?", "a:b", "a\\", "[a]", "a[", "", "é", "a%3A", "*", ":"]


def test_real_scan_match_keeps_hostile_tenants_apart(cache: Cache) -> None:
    for tenant in HOSTILE_TENANTS:
        for part in ("1", "*", ":x", ""):
            cache.set(cache.key("organization", part, tenant=tenant), tenant)
    for tenant in HOSTILE_TENANTS:
        pattern = cache.pattern("organization", tenant=tenant)
        found = {k.decode() for k in cache.redis.scan_iter(match=pattern, count=1000)}
        expected = {cache.key("organization", p, tenant=tenant) for p in ("1", "*", ":x", "")}
        assert found == expected, tenant
        narrower = cache.pattern("organization", "*", tenant=tenant)
        assert not set(cache.redis.scan_iter(match=narrower, count=1000))


def test_tenant_rules_are_enforced() -> None:
    with pytest.raises(CacheKeyError, match="tenant-scoped"):
        KEYS.key("organization", "1")
    with pytest.raises(CacheKeyError, match="tenant-scoped"):
        KEYS.pattern("analytics")
    with pytest.raises(CacheKeyError, match="global"):
        KEYS.key("session", "1", tenant="t")
    with pytest.raises(CacheKeyError, match="unknown key type"):
        KEYS.key("nope", "1")
    with pytest.raises(CacheKeyError, match="at least one"):
        KEYS.key("session")


def test_non_string_and_unencodable_parts_are_refused() -> None:
    with pytest.raises(CacheKeyError, match=r"parts\[0\]: expected a str, got int"):
        KEYS.key("session", 1)  # type: ignore[arg-type]
    with pytest.raises(CacheKeyError, match="tenant: expected text encodable"):
        KEYS.key("organization", "1", tenant="\ud800")


@pytest.mark.parametrize(
    "raw",
    ["*", "organization:*", "organization:a*", "organization:[ab]:*", "nope:*", "session:1"],
)
def test_unsafe_raw_patterns_are_refused(raw: str) -> None:
    with pytest.raises(CacheKeyError, match="pattern"):
        KEYS.check_pattern(raw)


def test_raw_patterns_pattern_could_build_are_accepted() -> None:
    assert KEYS.check_pattern("session:*") == KEYS.pattern("session")
    assert KEYS.check_pattern("organization:t%3A1:*") == KEYS.pattern("organization", tenant="t:1")
