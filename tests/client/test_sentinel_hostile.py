"""The client behind ``redis+sentinel://`` when a Sentinel answers what no real Sentinel
would, or nothing at all (a small fake, tests/support/resp.py; the master is a real
redis-server): a call stays within its budget and one broken Sentinel does not hide
the master the next one names."""

from __future__ import annotations

import time

import pytest
from prometheus_client import CollectorRegistry

from tests.client.conftest import MakeCache
from tests.exporter.test_sentinel_hostile import masters, sentinel_answering
from tests.support.processes import RedisServer
from tests.support.resp import FakeRedis, array, bulk


def test_a_frozen_sentinel_costs_a_call_its_budget_not_its_retries(make_cache: MakeCache) -> None:
    """Sentinel connections kept redis-py's default retries (3, with backoff): a sync
    ``get`` through a frozen Sentinel took 12.2 s against its 0.5 s budget."""
    with FakeRedis(sentinel_answering(None)) as sentinel:  # accepts, never answers
        cache = make_cache(
            f"redis+sentinel://{sentinel.address}/svc",
            registry=CollectorRegistry(),
            socket_timeout=0.25,
            socket_connect_timeout=0.25,
        )
        started = time.monotonic()
        assert cache.get("session:t1:abc") is None  # failed open
        assert time.monotonic() - started < 1.5


@pytest.mark.parametrize(
    "broken",
    [
        pytest.param(array([array([bulk("name"), bulk("svc")])]), id="fields-missing"),
        pytest.param(masters("127.0.0.1", "abc"), id="port-not-a-number"),
    ],
)
def test_one_broken_sentinel_does_not_hide_the_master_the_next_names(
    broken: bytes, make_cache: MakeCache, redis_server: RedisServer
) -> None:
    good = masters("127.0.0.1", str(redis_server.port))
    with (
        FakeRedis(sentinel_answering(broken)) as bad,
        FakeRedis(sentinel_answering(good)) as fine,
    ):
        cache = make_cache(
            f"redis+sentinel://{bad.address}/svc?sentinel={fine.address}",
            registry=CollectorRegistry(),
        )
        try:
            cache.set("session:t1:sentinel-hostile", {"ok": True})
            assert cache.get("session:t1:sentinel-hostile") == {"ok": True}
        finally:
            cache.close()
