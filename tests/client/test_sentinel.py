"""The client through Sentinel: ``redis+sentinel://`` finds the master, and the service
follows a forced failover (real redis-server and redis-server --sentinel)."""

from __future__ import annotations

import gc
import warnings
from collections.abc import Iterator

import pytest
import redis
from prometheus_client import CollectorRegistry

from tests.client.conftest import MakeCache
from tests.support.topology import SentinelGroup, wait_until


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelGroup]:
    """One group for the module: each test starts from whichever node is master."""
    found = SentinelGroup(tmp_path_factory.mktemp("sentinel-client"))
    yield found
    found.stop()


def _keys(port: int) -> int:
    client = redis.Redis(port=port)
    try:
        return int(client.dbsize())
    finally:
        client.close()


def _flush(port: int) -> None:
    with redis.Redis(port=port) as raw:
        raw.flushall()


def test_the_client_finds_the_master_through_sentinel(
    make_cache: MakeCache, group: SentinelGroup, registry: CollectorRegistry
) -> None:
    master = group.master_port()
    _flush(master)
    cache = make_cache(group.url, registry=registry)
    assert cache.set("session:found", {"n": 1})
    assert cache.get("session:found") == {"n": 1}
    assert _keys(master) == 1  # written on the master Sentinel names
    cache.close()


def test_the_client_follows_a_forced_failover(
    make_cache: MakeCache, group: SentinelGroup, registry: CollectorRegistry
) -> None:
    old_master = group.master_port()
    _flush(old_master)
    cache = make_cache(group.url, registry=registry)
    assert cache.set("session:before", {"n": 1})

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

    # nothing the failover made is left unclosed
    cache.close()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    leaked = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert not leaked, leaked
