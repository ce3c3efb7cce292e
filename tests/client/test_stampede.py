"""get_or_compute on one cold key: the loader runs once across threads, tasks, processes."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import threading
import time
from typing import Any

import pytest
import redis
from prometheus_client import CollectorRegistry

from exporter.client import AsyncCacheService, CacheService
from exporter.client.core import xfetch_due
from exporter.client.errors import CacheConfigError
from exporter.client.serialization import encode_meta
from tests.client.both import Cache, background
from tests.client.conftest import MakeCache, sample
from tests.client.workers import (
    LOADER_SECONDS,
    counting_loader,
    hanging_holder_process,
    slow_loader_process,
    stampede_process,
    waiter_process,
)
from tests.support.processes import free_port

COUNTER = "test:loader-runs"


def loader_runs(url: str) -> int:
    return int(redis.Redis.from_url(url).get(COUNTER) or 0)


def make_due(cache: Cache, key: str) -> None:
    """Pretend the value at ``key`` took long to compute and its soft expiry has come:
    XFetch is then due whatever the random draw (near but before it, 1 draw in 200
    would not be)."""
    meta_key = cache.keys.meta_key(key)
    assert meta_key is not None
    body = cache.redis.get(key)
    cache.redis.set(meta_key, encode_meta(body, 100.0, time.time() - 1), px=60_000)


def test_threads_share_one_computation(
    cache: Cache, registry: CollectorRegistry, redis_url: str
) -> None:
    key = cache.key("llm-response", "prompt-hash")
    loader = counting_loader(redis_url, COUNTER)
    barrier = threading.Barrier(16)
    results: list[Any] = []

    def call() -> None:
        barrier.wait()
        results.append(cache.get_or_compute(key, loader))

    threads = [threading.Thread(target=call) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == [{"computed": "once"}] * 16
    assert loader_runs(redis_url) == 1
    assert sample(registry, "cache_compute_seconds_count", type="llm-response") == 1
    assert sample(registry, "cache_compute_seconds_sum", type="llm-response") >= LOADER_SECONDS
    assert cache.get_or_compute(key, loader) == {"computed": "once"}
    assert cache.get(key) == {"computed": "once"}, "plain get reads get_or_compute values"
    assert loader_runs(redis_url) == 1


def test_two_services_in_one_process_meet_at_the_redis_lock(
    make_cache: MakeCache, redis_url: str, registry: CollectorRegistry
) -> None:
    one = make_cache(redis_url, registry=registry)
    two = make_cache(redis_url, registry=registry)
    key = one.key("user", "1")
    loader = counting_loader(redis_url, COUNTER)
    out: list[Any] = []
    threads = [
        threading.Thread(target=lambda s=s: out.append(s.get_or_compute(key, loader)))
        for s in (one, two, one, two)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert out == [{"computed": "once"}] * 4
    assert loader_runs(redis_url) == 1
    assert not one.redis.exists(one.keys.lock_key(key)), "the lock is released"
    one.close()
    two.close()


# one side: multiprocess workers running sync services (workers.py)
def test_processes_share_one_computation(redis_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    n = 4
    barrier = ctx.Barrier(n)
    results = ctx.Queue()
    key = "user:stampede"
    procs = [
        ctx.Process(target=stampede_process, args=(redis_url, key, COUNTER, barrier, results))
        for _ in range(n)
    ]
    for p in procs:
        p.start()
    got = [results.get(timeout=60) for _ in range(n)]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert got == [{"computed": "once"}] * n
    assert loader_runs(redis_url) == 1


def test_a_crashed_lock_holder_cannot_wedge_the_key(
    make_cache: MakeCache, redis_url: str, registry: CollectorRegistry
) -> None:
    cache = make_cache(redis_url, registry=registry, lock_lease=0.3, lock_max_wait=5)
    key = cache.key("user", "1")
    # a holder that died: its lock stays until the lease runs out
    cache.redis.set(cache.keys.lock_key(key), "dead-holder", px=300)
    t0 = time.monotonic()
    assert cache.get_or_compute(key, lambda: "fresh") == "fresh"
    assert 0.2 < time.monotonic() - t0 < 4.0
    cache.close()


def test_release_never_deletes_someone_elses_lock(cache: Cache) -> None:
    key = cache.key("user", "1")
    lock = cache.keys.lock_key(key)

    def load() -> str:
        # meanwhile our lease ran out and another holder took the lock
        cache.redis.set(lock, "someone-else", px=5000)
        return "v"

    assert cache.get_or_compute(key, load) == "v"
    assert cache.redis.get(lock) == b"someone-else"


def test_loader_errors_reach_every_waiter_and_nothing_is_cached(cache: Cache) -> None:
    key = cache.key("user", "1")
    barrier = threading.Barrier(4)
    seen: list[BaseException] = []
    runs: list[int] = []

    def failing() -> None:
        runs.append(1)
        time.sleep(0.2)
        raise LookupError("source down")

    def call() -> None:
        barrier.wait()
        try:
            cache.get_or_compute(key, failing)
        except LookupError as exc:
            seen.append(exc)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(seen) == 4
    assert len(runs) == 1, "the waiters joined the one computation"
    assert not cache.redis.exists(cache.keys.lock_key(key)), "the lock is released"
    assert cache.get(key) is None
    assert cache.get_or_compute(key, lambda: "ok") == "ok", "nothing of the failure is left"


def test_xfetch_refreshes_early_only_near_expiry() -> None:
    # far from expiry: practically never; at expiry: always; bigger delta: earlier
    assert not any(xfetch_due(0.01, 1000.0, 0.0, 1.0) for _ in range(1000))
    assert all(xfetch_due(0.01, 1000.0, 1000.0, 1.0) for _ in range(100))
    near = sum(xfetch_due(1.0, 1000.0, 999.0, 1.0) for _ in range(2000))
    assert 600 < near < 880  # P(-ln U >= 1) = e**-1, about 736 of 2000 (bounds ~6 sigma)
    assert not xfetch_due(0.0, 1000.0, 999.0, 1.0), "plain values never refresh early"


def test_hot_key_near_expiry_is_refreshed_by_one_caller(
    cache: Cache, registry: CollectorRegistry
) -> None:
    key = cache.key("feature-flag", "beta")
    cache.get_or_compute(key, lambda: "v1", ttl=60)
    make_due(cache, key)
    assert cache.get_or_compute(key, lambda: "v2", ttl=60) == "v2"
    assert cache.get(key) == "v2"
    assert sample(registry, "cache_hits_total", layer="redis", type="feature-flag") == 2


def test_get_or_compute_without_redis_computes(
    make_cache: MakeCache, registry: CollectorRegistry
) -> None:
    cache = make_cache(f"redis://127.0.0.1:{free_port()}/0", registry=registry)
    assert cache.get_or_compute(cache.key("user", "1"), lambda: 7) == 7
    assert sample(registry, "cache_compute_seconds_count", type="user") == 1
    cache.close()


# asyncio-only: task cancellation
async def test_a_cancelled_leader_does_not_cancel_the_tasks_waiting_on_it(
    acache: AsyncCacheService, registry: CollectorRegistry
) -> None:
    """A client disconnect cancels one request; the requests that joined its
    computation must not be cancelled with it (they compute the value themselves)."""
    key = acache.key("user", "1")
    started = asyncio.Event()

    async def hanging() -> str:
        started.set()
        await asyncio.sleep(60)
        return "never"

    async def fresh() -> str:
        return "fresh"

    leader = asyncio.create_task(acache.get_or_compute(key, hanging))
    await started.wait()
    follower = asyncio.create_task(acache.get_or_compute(key, fresh))
    # the follower counts its miss and joins the flight in one step (no await between)
    deadline = time.monotonic() + 5
    while sample(registry, "cache_misses_total", layer="redis", type="user") < 2:
        assert time.monotonic() < deadline, "the follower never read the key"
        await asyncio.sleep(0.005)
    leader.cancel()
    assert await asyncio.wait_for(follower, 10) == "fresh"
    assert leader.cancelled()
    assert await acache.get(key) == "fresh"


def test_a_failing_early_refresh_keeps_serving_the_cached_value(
    cache: Cache, registry: CollectorRegistry
) -> None:
    """An XFetch refresh is opportunistic: the cached value has not expired, so a source
    that fails during it must not turn a hit into an exception for the caller."""
    key = cache.key("feature-flag", "beta")
    cache.get_or_compute(key, lambda: "v1", ttl=60)
    make_due(cache, key)

    def failing() -> str:
        raise LookupError("source down")

    assert cache.get_or_compute(key, failing, ttl=60) == "v1"
    assert not cache.redis.exists(cache.keys.lock_key(key)), "the refresh lock is released"
    assert cache.get_or_compute(key, lambda: "v2", ttl=60) == "v2", "the next caller refreshes"


def test_a_lock_is_renewed_while_its_loader_outlives_the_lease(
    make_cache: MakeCache, redis_url: str, registry: CollectorRegistry
) -> None:
    """The lease only guards against crashed holders: a live holder whose loader takes
    longer than the lease (an LLM call) keeps the lock, so other processes keep
    waiting for its value instead of running the loader again."""
    one = make_cache(redis_url, registry=registry, lock_lease=0.6, lock_max_wait=10)
    two = make_cache(redis_url, registry=CollectorRegistry(), lock_lease=0.6, lock_max_wait=10)
    idle = background(one)
    key = one.key("llm-response", "slow")
    raw = redis.Redis.from_url(redis_url)

    def loader() -> str:
        raw.incr(COUNTER)
        time.sleep(1.8)  # three leases
        return "answer"

    out: list[Any] = []
    holder = threading.Thread(target=lambda: out.append(one.get_or_compute(key, loader)))
    holder.start()
    deadline = time.monotonic() + 5
    while not raw.exists(one.keys.lock_key(key)):
        assert time.monotonic() < deadline, "the holder never took the lock"
        time.sleep(0.005)
    out.append(two.get_or_compute(key, loader))  # another process's caller
    holder.join(10)
    assert out == ["answer", "answer"]
    assert loader_runs(redis_url) == 1
    assert not raw.exists(one.keys.lock_key(key)), "released after the write"
    deadline = time.monotonic() + 5
    while background(one) - idle:  # no lock held: nothing renews in the background
        assert time.monotonic() < deadline, "an idle lease renewal kept running"
        time.sleep(0.01)
    one.close()
    two.close()
    raw.close()


# multiprocess workers, sync and asyncio ones side by side (workers.py)
def test_a_loader_slower_than_the_lease_runs_once_across_processes(redis_url: str) -> None:
    """Waiters in other processes (sync and asyncio) keep waiting while the holder renews
    its lease, past ``lock_lease`` and the old wait of one lease: nobody computes twice."""
    ctx = multiprocessing.get_context("spawn")
    n = 4
    barrier = ctx.Barrier(n)
    results = ctx.Queue()
    key = "llm-response:slow-across-processes"
    procs = [
        ctx.Process(
            target=slow_loader_process,
            args=(redis_url, key, COUNTER, barrier, results, 0.4, 2.0, i % 2 == 1),
        )
        for i in range(n)
    ]
    for p in procs:
        p.start()
    got = [results.get(timeout=90) for _ in range(n)]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert got == [({"computed": "once"}, 0.0)] * n, "every caller read the one value"
    assert loader_runs(redis_url) == 1


# multiprocess workers, sync and asyncio ones side by side (workers.py)
def test_a_killed_lock_holder_lets_a_waiter_compute_after_its_lease(redis_url: str) -> None:
    """The holder's process dies mid-compute: its lock outlives it by one lease at most,
    and the waiting callers (sync and asyncio, other processes) then compute the value."""
    ctx = multiprocessing.get_context("spawn")
    raw = redis.Redis.from_url(redis_url)
    key = "user:killed-holder"
    probe = CacheService.from_url(redis_url, registry=CollectorRegistry())
    lock = probe.keys.lock_key(key)
    probe.close()
    lease = 0.5
    holder = ctx.Process(target=hanging_holder_process, args=(redis_url, key, COUNTER, lease))
    holder.start()
    try:
        deadline = time.monotonic() + 60
        while not (raw.exists(lock) and loader_runs(redis_url) == 1):
            assert time.monotonic() < deadline, "the holder never started computing"
            time.sleep(0.02)
        results = ctx.Queue()
        waiting = "test:waiting"
        waiters = [
            ctx.Process(
                target=waiter_process,
                args=(redis_url, key, COUNTER, waiting, results, lease, use_async),
            )
            for use_async in (False, True)
        ]
        for p in waiters:
            p.start()
        while int(raw.get(waiting) or 0) < len(waiters):
            assert time.monotonic() < deadline, "the waiters never started"
            time.sleep(0.02)
        time.sleep(4 * lease)  # several leases: the live holder keeps its lock
        assert results.empty(), "a waiter gave up on a live holder"
        assert loader_runs(redis_url) == 1
        assert raw.exists(lock)
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # type: ignore[arg-type]
        holder.join(30)
    got = [results.get(timeout=60) for _ in waiters]
    for p in waiters:
        p.join(30)
        assert p.exitcode == 0
    assert got == [({"computed": "by-waiter"}, 0.0)] * len(waiters)
    assert loader_runs(redis_url) == 2, "one waiter computed, the other read its value"
    raw.close()


def test_a_waiter_computes_after_lock_max_wait_even_if_the_lock_is_held(
    make_cache: MakeCache, redis_url: str, registry: CollectorRegistry
) -> None:
    """Fail open: a holder that keeps its lock forever cannot hang callers."""
    cache = make_cache(redis_url, registry=registry, lock_max_wait=0.3)
    key = cache.key("user", "1")
    cache.redis.set(cache.keys.lock_key(key), "wedged-holder", px=120_000)
    assert cache.get_or_compute(key, lambda: "fresh") == "fresh"
    errors = {"layer": "redis", "operation": "get_or_compute", "error": "timeout"}
    assert sample(registry, "cache_errors_total", **errors) == 1
    cache.close()


def test_lock_max_wait_is_checked_and_lock_wait_is_its_old_name(
    make_cache: MakeCache, redis_url: str
) -> None:
    cache = make_cache(redis_url, registry=CollectorRegistry())
    assert cache.lock_max_wait == 30.0, "the default outlasts many leases"
    cache.close()
    old = make_cache(redis_url, registry=CollectorRegistry(), lock_wait=7)
    assert old.lock_max_wait == 7.0
    old.close()
    for bad in (0, -1, float("inf"), "5", True):
        with pytest.raises(CacheConfigError, match="lock_max_wait"):
            make_cache(redis_url, registry=CollectorRegistry(), lock_max_wait=bad)
