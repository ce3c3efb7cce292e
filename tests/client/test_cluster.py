"""A real Redis Cluster (3 masters, 3 replicas): multi-key operations stay correct across
hash slots, and the service follows a failover."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.exceptions as rex
from prometheus_client import CollectorRegistry

from exporter.client import INVALIDATION_CHANNEL, AsyncCacheService, CacheConfigError
from exporter.client.instrumentation import error_class
from exporter.client.serialization import encode_meta
from exporter.demo.proxy import DelayProxy
from tests.client.both import Cache
from tests.client.conftest import MakeCache, sample
from tests.support.cluster import LocalCluster, cluster_port
from tests.support.processes import RedisServer


@pytest.fixture
def cluster_url(redis_cluster: LocalCluster) -> str:
    """The session's 3-master, 3-replica cluster, whole again if a test killed a node."""
    redis_cluster.heal()
    return redis_cluster.url


@pytest.fixture
def ccache(make_cache: MakeCache, cluster_url: str, registry: CollectorRegistry) -> Cache:
    service = make_cache(cluster_url, cluster=True, registry=registry)
    service.redis.flushall(target_nodes="primaries")
    return service


def eventually(ok: Callable[[], object], what: str, seconds: float = 60) -> None:
    """Call ``ok`` every 0.1 s until it is true; fail after ``seconds`` (slow when busy)."""
    give_up = time.monotonic() + seconds
    while not ok():
        assert time.monotonic() < give_up, f"the service never succeeded {what}"
        time.sleep(0.1)


def slots(cache: Cache, keys: list[str]) -> set[int]:
    return {cache.redis.keyslot(k) for k in keys}


def test_mget_mset_span_slots(ccache: Cache, registry: CollectorRegistry) -> None:
    keys = [ccache.key("user", str(n)) for n in range(50)]
    assert len(slots(ccache, keys)) > 10
    assert ccache.mset({k: n for n, k in enumerate(keys)})
    assert ccache.mget([*keys, ccache.key("user", "missing")]) == [*range(50), None]
    assert sample(registry, "cache_hits_total", layer="redis", type="user") == 50
    assert 3_598_000 < ccache.redis.pttl(keys[7]) <= 3_600_000


def test_tags_invalidate_across_slots_and_the_broadcast_reaches_every_node(
    ccache: Cache,
) -> None:
    """Both sides broadcast on a cluster (redis.asyncio's ``RedisCluster`` has no
    ``publish``: the async service sends ``PUBLISH`` to one node), and Redis Cluster
    delivers it to subscribers of every primary."""
    clients: list[Any] = []  # a Redis client closes its pool, pubsub included, when freed
    listeners = []
    for node in ccache.redis.get_primaries():
        clients.append(redis.Redis(host=node.host, port=node.port))
        pubsub = clients[-1].pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(INVALIDATION_CHANNEL)
        listeners.append(pubsub)
    try:
        keys = [ccache.key("organization", str(n), tenant="t") for n in range(20)]
        for k in keys:
            ccache.set_with_tags(k, 1, ["all"], tenant="t")
        assert len(slots(ccache, keys)) > 5
        assert ccache.invalidate_tag("all", tenant="t") == 20
        assert ccache.mget(keys) == [None] * 20
        for pubsub in listeners:
            message = None
            deadline = time.monotonic() + 5
            while message is None and time.monotonic() < deadline:
                message = pubsub.get_message(timeout=0.1)  # None: nothing, or a confirmation
            assert message is not None, "no broadcast reached this node's subscriber"
            body = json.loads(message["data"])
            assert body["tags"] == ["all"] and sorted(body["keys"]) == sorted(keys)
        assert ccache.publish("elsewhere", "hello") == 0  # a number, not a per-node dict
    finally:
        for pubsub in listeners:
            pubsub.close()
        for client in clients:
            client.close()


def test_get_or_compute_reads_value_and_metadata_in_one_slot(
    ccache: Cache, registry: CollectorRegistry
) -> None:
    """The value is plain JSON; its early-refresh metadata sits in a companion key of
    the same slot, read with it by one MGET: hits and XFetch work across the cluster."""
    keys = [ccache.key("user", str(n)) for n in range(20)]
    assert len(slots(ccache, keys)) > 5
    for n, key in enumerate(keys):
        assert ccache.get_or_compute(key, lambda n=n: {"n": n}) == {"n": n}  # type: ignore[misc]
        assert ccache.redis.get(key) == json.dumps({"n": n}, separators=(",", ":")).encode()
        meta_key = ccache.keys.meta_key(key)
        assert meta_key is not None and ccache.redis.keyslot(meta_key) == ccache.redis.keyslot(key)
        assert ccache.get_or_compute(key, lambda: "never") == {"n": n}
    # an expiry in the past makes XFetch due: the next call refreshes
    meta_key = str(ccache.keys.meta_key(keys[3]))
    ccache.redis.set(meta_key, encode_meta(ccache.redis.get(keys[3]), 100.0, 1.0), px=60_000)
    assert ccache.get_or_compute(keys[3], lambda: "refreshed") == "refreshed"
    assert sample(registry, "cache_hits_total", layer="redis", type="user") == 21
    labels = {"layer": "redis", "operation": "get_or_compute", "error": "response"}
    assert sample(registry, "cache_errors_total", **labels) == 0


def test_delete_pattern_scans_every_primary(ccache: Cache) -> None:
    for tenant in ("a", "b"):
        ccache.mset({ccache.key("organization", str(n), tenant=tenant): n for n in range(40)})
    assert ccache.delete_pattern(ccache.pattern("organization", tenant="a"), batch=9) == 40
    left = list(ccache.redis.scan_iter(match="organization:*", target_nodes="primaries"))
    assert len(left) == 40


def test_counters_versions_and_stampede_lock(
    ccache: Cache, make_cache: MakeCache, cluster_url: str
) -> None:
    rl = ccache.key("rate-limit", "u", tenant="t")
    assert ccache.incr(rl) == 1 and ccache.redis.pttl(rl) > 0
    assert ccache.bump_version("user", "1") == 1
    assert ccache.versioned_key("user", "1").endswith("%v1")
    runs = []
    other = make_cache(cluster_url, cluster=True, registry=CollectorRegistry())
    key = ccache.key("llm-response", "p")

    def slow() -> str:
        runs.append(1)
        time.sleep(0.2)
        return "answer"

    out: list[Any] = []
    threads = [
        threading.Thread(target=lambda s=s: out.append(s.get_or_compute(key, slow)))
        for s in (ccache, other, ccache, other)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert out == ["answer"] * 4 and len(runs) == 1
    other.close()


# asyncio-only: redis.asyncio's RedisCluster has no pub/sub
async def test_the_async_cluster_refuses_subscribe(
    cluster_url: str, registry: CollectorRegistry
) -> None:
    cache = AsyncCacheService.from_url(cluster_url, cluster=True, registry=registry)
    with pytest.raises(CacheConfigError, match="no pub/sub"):
        await cache.subscribe("events", print)
    assert not cache.subscriptions
    await cache.aclose()


# asyncio-only: only the event loop's side cuts a call short at its deadline
async def test_a_cluster_slower_to_read_than_a_deadline_is_read_in_the_background(
    redis_cluster: LocalCluster, cluster_url: str, registry: CollectorRegistry
) -> None:
    """redis-py re-reads the cluster (per seed a connect, READONLY and CLUSTER SLOTS,
    then COMMAND) inside the call that needs it.  On a loaded machine that took longer
    than the call's deadline: every call cut it short, the next started over, and the
    asyncio service never found a failed-over master.  Here the seed answers 0.3 s late
    and a call may take 0.2 s: calls fail open within their deadline while the service
    reads the cluster in the background, then they succeed."""
    seed = next(node for node in redis_cluster.nodes if node.running)
    with DelayProxy("127.0.0.1", seed.port, delay=0.3) as proxy:
        cache = AsyncCacheService.from_url(
            f"redis://127.0.0.1:{proxy.port}", cluster=True, registry=registry,
            socket_timeout=1.0, socket_connect_timeout=1.0, breaker_cooldown=0.05,
        )  # fmt: skip
        cache.deadline = 0.2
        key = cache.key("user", "slow-seed")
        slowest_failure = 0.0
        try:
            give_up = time.monotonic() + 15
            while True:
                t0 = time.monotonic()
                if await cache.set(key, "stored"):
                    break
                slowest_failure = max(slowest_failure, time.monotonic() - t0)
                assert time.monotonic() < give_up, "the service never read the cluster"
                await asyncio.sleep(0.05)
            assert await cache.get(key) == "stored"
        finally:
            await cache.aclose()
    timeouts = sample(registry, "cache_errors_total", layer="redis", operation="set",
                      error="timeout")  # fmt: skip
    assert timeouts >= 1, "the seed was not slow enough to test anything"
    assert slowest_failure < 0.2 + 0.5  # a caller never waits for the re-read


@pytest.fixture
def one_node_cluster(tmp_path: Path) -> Iterator[RedisServer]:
    """A cluster of one primary holding every slot (safe to kill and restart)."""
    (tmp_path / "node").mkdir()
    extra = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
    node = RedisServer(tmp_path / "node", extra=extra, port=cluster_port()).start()
    admin = redis.Redis(port=node.port)
    admin.execute_command("CLUSTER", "ADDSLOTSRANGE", "0", "16383")
    wait_cluster_ok(node)
    admin.close()
    yield node
    node.stop()


def wait_cluster_ok(node: RedisServer) -> None:
    admin = redis.Redis(port=node.port)
    deadline = time.monotonic() + 20
    while admin.cluster("info")["cluster_state"] != "ok":
        assert time.monotonic() < deadline, "cluster did not become ok"
        time.sleep(0.05)
    admin.close()


def test_a_dead_cluster_is_a_connection_error_and_opens_the_breaker(
    make_cache: MakeCache, one_node_cluster: RedisServer, registry: CollectorRegistry
) -> None:
    """redis-py reports an unreachable cluster as RedisClusterException("cannot be
    connected", raised while handling the ConnectionError), ClusterError("TTL
    exhausted") or SlotNotCoveredError: all are Redis being down."""
    cache = make_cache(
        one_node_cluster.url, cluster=True, registry=registry, breaker_threshold=3,
        breaker_cooldown=60,
    )  # fmt: skip
    key = cache.key("user", "1")
    assert cache.set(key, 1) and cache.get(key) == 1
    one_node_cluster.kill()
    for _ in range(5):
        assert cache.get(key) is None
    labels = {"layer": "redis", "operation": "get"}
    assert sample(registry, "cache_errors_total", **labels, error="other") == 0
    assert sample(registry, "cache_errors_total", **labels, error="connection") == 3
    assert sample(registry, "cache_errors_total", **labels, error="circuit_open") == 2
    assert cache.breaker.state == "open"
    cache.close()


def test_the_client_recovers_when_the_whole_cluster_returns(
    make_cache: MakeCache, one_node_cluster: RedisServer, registry: CollectorRegistry
) -> None:
    """redis-py drops every node that fails from its startup nodes; once all have
    failed it can never rediscover the cluster.  The service must recover by itself."""
    cache = make_cache(one_node_cluster.url, cluster=True, registry=registry, breaker_cooldown=0.05)
    key = cache.key("user", "1")
    assert cache.set(key, "before")
    one_node_cluster.kill()
    for _ in range(3):
        assert cache.get(key) is None
    one_node_cluster.start()  # same port, same nodes.conf
    wait_cluster_ok(one_node_cluster)
    deadline = time.monotonic() + 10
    while not cache.set(key, "after"):
        assert time.monotonic() < deadline, "the service never reconnected to the cluster"
        time.sleep(0.05)
    assert cache.get(key) == "after"
    cache.close()


def test_cluster_outage_exceptions_are_connection_errors() -> None:
    assert error_class(rex.ClusterError("TTL exhausted.")) == "connection"
    assert error_class(rex.SlotNotCoveredError('Slot "1" is not covered')) == "connection"
    try:
        try:
            raise rex.TimeoutError("slow")
        except rex.TimeoutError as exc:
            raise rex.RedisClusterException("Redis Cluster cannot be connected") from exc
    except rex.RedisClusterException as wrapped:
        assert error_class(wrapped) == "timeout"
    assert error_class(rex.RedisClusterException("Invalid args in command")) == "other"


def test_the_service_follows_a_failover_to_the_promoted_replica(
    make_cache: MakeCache, redis_cluster: LocalCluster, cluster_url: str
) -> None:
    """A master killed mid-test: once its replica is promoted, the same service reads
    what was written before (once replicated) and writes again, without a restart."""
    cache = make_cache(cluster_url, cluster=True, registry=CollectorRegistry(),
                       breaker_cooldown=0.05)  # fmt: skip
    keys = [cache.key("user", str(n)) for n in range(30)]
    # a busy machine may need more than one call's deadline to read the cluster first
    eventually(lambda: cache.mset({k: n for n, k in enumerate(keys)}), "reading the cluster")
    victim_port = cache.redis.get_node_from_key(keys[0]).port
    victim = next(n for n in redis_cluster.nodes if n.port == victim_port)
    replica = redis_cluster.replica_of(victim)
    redis_cluster.wait_replicated(victim, replica)  # else a busy machine loses the writes
    try:
        victim.kill()
        redis_cluster.wait_promoted(replica)
        with redis_cluster.client(replica) as conn:
            assert conn.get(keys[0]) == b"0", "the promoted replica lost the write"
        eventually(lambda: cache.get(keys[0]) == 0, "finding the new master")
        assert cache.mget(keys) == list(range(30))
        assert cache.set(keys[0], "after") and cache.get(keys[0]) == "after"
        assert cache.redis.get_node_from_key(keys[0]).port == replica.port
    finally:
        cache.close()
        redis_cluster.heal()


def test_the_service_follows_a_slot_migration(
    make_cache: MakeCache, redis_cluster: LocalCluster, cluster_url: str
) -> None:
    """Slots (and their keys) move to another master while the service runs: redis-py
    follows the MOVED replies, and no call fails."""
    cache = make_cache(cluster_url, cluster=True, registry=(registry := CollectorRegistry()))
    keys = [cache.key("user", str(n)) for n in range(200)]
    assert cache.mset({k: n for n, k in enumerate(keys)})
    source = next(
        n for n in redis_cluster.nodes if n.port == cache.redis.get_node_from_key(keys[0]).port
    )
    target = next(m for m in redis_cluster.masters() if m is not source)
    redis_cluster.reshard(source, target, 200)
    try:
        assert cache.mget(keys) == list(range(200))
        assert cache.set(keys[0], "moved?") and cache.get(keys[0]) == "moved?"
        moved = [k for k in keys if cache.redis.get_node_from_key(k).port == target.port]
        assert moved, "no key of the test moved"
        assert sample(registry, "cache_errors_total", layer="redis", operation="get",
                      error="other") == 0  # fmt: skip
    finally:
        cache.close()
