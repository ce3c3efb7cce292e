"""The keyspace sampler against real redis-servers: exact, sampled, never blocking."""

from __future__ import annotations

import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest
import redis
from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric

from exporter.collectors.keyspace_sampler import DbSample, KeyspaceSampler, dbs_with_keys
from exporter.metrics import CACHE_KEYS, CACHE_SIZE, LAYER_REDIS, SAMPLER_CYCLES
from exporter.slo import SLO
from tests.collectors.conftest import exact_by_type, seed
from tests.support.processes import RedisServer, free_port


def _samples(metrics: list[Metric], name: str) -> dict[str, float]:
    """``{type or instance: value}`` of one family from a collect() result."""
    found: dict[str, float] = {}
    for family in metrics:
        for sample in family.samples:
            if sample.name == name:
                found[sample.labels.get("type", sample.labels.get("instance", ""))] = sample.value
    return found


def test_dbs_with_keys_reads_info_keyspace() -> None:
    parsed = {
        "db0": {"keys": 3, "expires": 0, "avg_ttl": 0},
        "db5": {"keys": 0, "expires": 0},
        "db12": {"keys": 7, "expires": 7},
        "note": "ignored",
    }
    assert dbs_with_keys(parsed) == {0: 3, 12: 7}


def test_partial_pass_scales_each_type_by_dbsize_over_sample() -> None:
    sample = DbSample(0, 1000, 100, False, {"user": 30, "other": 70}, {"user": 3000, "other": 700})
    keys, size = sample.extrapolated()
    assert keys == {"user": 300.0, "other": 700.0}
    assert size == {"user": 30000.0, "other": 7000.0}


def test_small_keyspace_is_counted_exactly_across_databases(redis_url: str, slo: SLO) -> None:
    rng = random.Random(1)
    db0 = redis.Redis.from_url(redis_url)
    db2 = redis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/2")
    seed(db0, 600, rng=rng)
    seed(db2, 300, rng=rng, start=10_000)
    db0.hset("user:hash-valued", mapping={f"f{i}": "x" * i for i in range(20)})
    counts0, sizes0 = exact_by_type(db0, slo)
    counts2, sizes2 = exact_by_type(db2, slo)
    exact_counts, exact_sizes = counts0 + counts2, sizes0 + sizes2

    sampler = KeyspaceSampler(redis_url, slo, instance="t", batch_size=50, pause=0)
    try:
        estimate = sampler.run_cycle()
        assert estimate is not None
        assert estimate.complete
        assert estimate.sampled == estimate.total_keys == 901
        assert {t: int(n) for t, n in estimate.keys.items() if n} == dict(exact_counts)
        assert {t: int(b) for t, b in estimate.size_bytes.items() if b} == dict(exact_sizes)

        registry = CollectorRegistry()
        registry.register(sampler)
        labels = {"layer": LAYER_REDIS, "type": "session"}
        assert registry.get_sample_value(CACHE_KEYS.name, labels) == exact_counts["session"]
        assert registry.get_sample_value(CACHE_SIZE.name, labels) == exact_sizes["session"]
        assert registry.get_sample_value(SAMPLER_CYCLES.name, {"instance": "t"}) == 1
        for kind in slo.type_names:  # every type is a series, 0 when absent
            assert registry.get_sample_value(CACHE_KEYS.name, {**labels, "type": kind}) == (
                exact_counts.get(kind, 0)
            )
    finally:
        sampler.stop()
        db0.close()
        db2.close()


def test_large_keyspace_sample_is_within_two_percent_of_exact(redis_url: str, slo: SLO) -> None:
    client = redis.Redis.from_url(redis_url)
    written = seed(client, 200_000, rng=random.Random(2), sizes=(40, 600))
    exact_counts, exact_sizes = exact_by_type(client, slo)
    assert exact_counts == written
    sampler = KeyspaceSampler(
        redis_url, slo, instance="t", batch_size=500, pause=0, max_keys=100_000
    )
    try:
        estimate = sampler.run_cycle()
    finally:
        sampler.stop()
        client.close()
    assert estimate is not None
    assert not estimate.complete  # a sample, not a full pass
    assert 100_000 <= estimate.sampled < 100_000 + 2 * 500
    assert estimate.total_keys == 200_000
    for kind, exact in exact_counts.items():
        assert estimate.keys[kind] == pytest.approx(exact, rel=0.02), kind
        assert estimate.size_bytes[kind] == pytest.approx(exact_sizes[kind], rel=0.02), kind


def _collect_in_thread(collector: KeyspaceSampler) -> list[Metric]:
    """collect() on another thread; fails the test if it does not return (it waited)."""
    result: list[Metric] = []
    worker = threading.Thread(target=lambda: result.extend(collector.collect()), daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "collect() waited for Redis"
    return result


def _wait(predicate: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.001)


def test_collect_serves_the_latest_estimate_while_redis_is_frozen_mid_cycle(
    redis_factory: Callable[..., RedisServer], slo: SLO
) -> None:
    server = redis_factory()
    client = redis.Redis.from_url(server.url)
    seed(client, 5000, rng=random.Random(3))
    sampler = KeyspaceSampler(
        server.url, slo, instance="t", batch_size=50, pause=0.02, interval=0.5
    )
    assert server.proc is not None
    sampler.start()
    try:
        # first cycle frozen mid-way: nothing to serve yet, and collect() still returns
        _wait(lambda: sampler.progress > 0)
        server.proc.send_signal(signal.SIGSTOP)
        try:
            metrics = _collect_in_thread(sampler)
            assert _samples(metrics, CACHE_KEYS.name) == {}
            assert _samples(metrics, SAMPLER_CYCLES.name) == {"t": 0}
            assert sampler.estimate is None
        finally:
            server.proc.send_signal(signal.SIGCONT)
        assert sampler.wait_for_cycle(60)
        first = sampler.estimate
        assert first is not None
        client.set("session:late", b"x")  # the next cycle will differ

        # second cycle frozen mid-way: the first cycle's estimate is served
        _wait(lambda: sampler.progress > 0)
        server.proc.send_signal(signal.SIGSTOP)
        try:
            metrics = _collect_in_thread(sampler)
            assert sampler.cycles == 1
        finally:
            server.proc.send_signal(signal.SIGCONT)
        assert _samples(metrics, CACHE_KEYS.name) == dict(first.keys)
        assert _samples(metrics, SAMPLER_CYCLES.name) == {"t": 1}
        assert sampler.wait_for_cycle(60, cycles=2)
        second = sampler.estimate
        assert second is not None
        assert second.keys["session"] == first.keys["session"] + 1
    finally:
        sampler.stop()
        client.close()


def test_registering_does_not_touch_redis(slo: SLO) -> None:
    sampler = KeyspaceSampler(f"redis://127.0.0.1:{free_port()}/0", slo, instance="down")
    registry = CollectorRegistry()
    registry.register(sampler)  # calls describe(): must not connect
    assert registry.get_sample_value(SAMPLER_CYCLES.name, {"instance": "down"}) == 0
    assert Counter(m.name for m in sampler.describe()) == Counter(m.name for m in sampler.collect())


def test_sampler_recovers_after_redis_restarts(
    redis_factory: Callable[..., RedisServer], slo: SLO
) -> None:
    server = redis_factory()
    client = redis.Redis.from_url(server.url)
    seed(client, 100, rng=random.Random(10))
    sampler = KeyspaceSampler(server.url, slo, instance="t", pause=0, interval=0.05)
    sampler.start()
    try:
        assert sampler.wait_for_cycle(30)
        server.kill()
        server.start()  # same port, empty keyspace
        client = redis.Redis.from_url(server.url)
        client.set("session:after-restart", b"x")
        _wait(lambda: (e := sampler.estimate) is not None and e.total_keys == 1)
    finally:
        sampler.stop()
        client.close()
    estimate = sampler.estimate
    assert estimate is not None
    assert estimate.keys["session"] == 1


def test_a_user_without_memory_permission_still_gets_exact_key_counts(
    redis_factory: Callable[..., RedisServer], slo: SLO
) -> None:
    """A least-privilege ACL user without MEMORY: counts stay exact, sizes are not made up."""
    server = redis_factory(
        "--user", "default", "on", "nopass", "~*", "&*", "+@all",
        "--user", "watcher", "on", ">watch-pw", "~*", "+info", "+scan", "+dbsize", "+ping",
        "+select", "+client",
    )  # fmt: skip
    admin = redis.Redis.from_url(server.url)
    written = seed(admin, 300, rng=random.Random(7))
    admin.close()
    sampler = KeyspaceSampler(
        server.url,
        slo,
        instance="t",
        pause=0.0,
        redis_kwargs={"username": "watcher", "password": "watch-pw"},
    )
    try:
        estimate = sampler.run_cycle()
        assert estimate is not None
        assert {t: n for t, n in estimate.keys.items() if n} == dict(written)
        collected = list(sampler.collect())
        assert _samples(collected, "cache_keys") == {
            t: float(written.get(t, 0)) for t in estimate.keys
        }
        # no size was measured: no cache_size_bytes sample claims 0 bytes
        assert _samples(collected, "cache_size_bytes") == {}
    finally:
        sampler.stop()


def test_huge_aggregates_are_sized_without_blocking_redis(
    redis_factory: Callable[..., RedisServer], slo: SLO
) -> None:
    """One 300k-field hash and one 300k-element list: MEMORY USAGE samples, never walks them."""
    server = redis_factory("--slowlog-log-slower-than", "20000")  # 20 ms: a walk, not a sample
    r = redis.Redis.from_url(server.url)
    for at in range(0, 300_000, 10_000):
        r.hset("user:huge", mapping={f"field-{i}": "v" * 20 for i in range(at, at + 10_000)})
        r.rpush("session:huge", *(["e" * 20] * 10_000))
    r.set("organization:small", "x")
    exact = sum(r.memory_usage(k, samples=0) or 0 for k in ("user:huge", "session:huge"))
    r.slowlog_reset()
    sampler = KeyspaceSampler(server.url, slo, instance="t", pause=0.0)
    try:
        estimate = sampler.run_cycle()
    finally:
        sampler.stop()
    assert estimate is not None and estimate.complete
    assert estimate.keys["user"] == estimate.keys["session"] == 1.0
    estimated = estimate.size_bytes["user"] + estimate.size_bytes["session"]
    assert 0.5 * exact < estimated < 2 * exact  # sampled, so approximate, but the right size
    slow = [entry["command"] for entry in r.slowlog_get(128)]
    assert not [c for c in slow if b"MEMORY" in c.upper()], slow
    r.close()
