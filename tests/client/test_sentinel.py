"""The client through Sentinel: ``redis+sentinel://`` finds the master, and the service
follows a forced failover (real redis-server and redis-server --sentinel)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from prometheus_client import CollectorRegistry

from tests.client.conftest import MakeCache
from tests.support.topology import SentinelGroup, wait_until


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelGroup]:
    """One group for both sides: each test fails over from whichever node is master."""
    found = SentinelGroup(tmp_path_factory.mktemp("sentinel-client"))
    yield found
    found.stop()


def _keys(port: int) -> int:
    client = redis.Redis(port=port)
    try:
        return int(client.dbsize())
    finally:
        client.close()


def test_the_client_finds_the_master_through_sentinel_and_follows_a_failover(
    make_cache: MakeCache, group: SentinelGroup, registry: CollectorRegistry
) -> None:
    old_master = group.master_port()
    with redis.Redis(port=old_master) as raw:
        raw.flushall()
    cache = make_cache(group.url, registry=registry)
    assert cache.set("session:before", {"n": 1})
    assert cache.get("session:before") == {"n": 1}
    assert _keys(old_master) == 1  # written on the master Sentinel named

    # forced: the old master stays up until Sentinel demotes it and drops its clients
    new_master = group.failover(old_follows=True)
    assert new_master != old_master

    # then calls land on the new master (a call may fail soft while the client
    # reconnects), and what was written before the failover is still there
    wait_until(
        lambda: cache.set("session:after", {"n": 2}) and _keys(new_master) == 2,
        what="a write on the new master",
    )
    assert cache.get("session:after") == {"n": 2}
    assert cache.get("session:before") == {"n": 1}
