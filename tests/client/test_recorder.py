"""Per-call events are queued and applied in batches: a scrape still sees every call made
before it, the queue stays bounded, dropped services and odd keys lose nothing and
break nothing (real Redis)."""

from __future__ import annotations

import gc
import subprocess
import sys
import threading
import time

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from exporter.client import CacheService, recorder
from exporter.client.instrumentation import Instruments
from exporter.client.recorder import FLUSH_AT
from tests.client.both import Cache
from tests.client.conftest import MakeCache, sample
from tests.support.processes import cleanup_env, free_port


def test_a_scrape_sees_every_call_made_before_it(cache: Cache, registry: CollectorRegistry) -> None:
    key = cache.key("session", "s1")
    cache.set(key, {"user": 1})
    for n in range(1, 4):
        assert cache.get(key) == {"user": 1}
        assert cache.get(cache.key("session", "gone")) is None
        assert sample(registry, "cache_hits_total", layer="redis", type="session") == n
        assert sample(registry, "cache_misses_total", layer="redis", type="session") == n
        gets = sample(registry, "cache_latency_seconds_count", layer="redis", operation="get")
        assert gets == 2 * n
    assert sample(registry, "cache_latency_seconds_count", layer="redis", operation="set") == 1


def test_the_queue_stays_bounded_and_counts_stay_exact(
    cache: Cache, registry: CollectorRegistry
) -> None:
    user, other = cache.key("user", "u1"), "no-type-key"
    cache.set(user, 1)
    calls = 3 * FLUSH_AT + 7
    for _ in range(calls):
        cache.get(user)
        cache.get(other)
        assert len(cache._rec.events) <= FLUSH_AT + 1
    assert sample(registry, "cache_hits_total", layer="redis", type="user") == calls
    assert sample(registry, "cache_misses_total", layer="redis", type="other") == calls
    latency = sample(registry, "cache_latency_seconds_count", layer="redis", operation="get")
    assert latency == 2 * calls
    assert sample(registry, "cache_latency_seconds_sum", layer="redis", operation="get") > 0


def test_threads_and_scrapes_together_count_every_call(
    cache: Cache, registry: CollectorRegistry
) -> None:
    keys = [cache.key("user", str(n)) for n in range(4)]
    for key in keys[:2]:
        cache.set(key, "v")
    threads, per_thread = 6, 400
    stop = threading.Event()
    scrapes: list[float] = []

    def work() -> None:
        for n in range(per_thread):
            cache.get(keys[n % 4])

    def scrape() -> None:
        while not stop.is_set():
            generate_latest(registry)
            scrapes.append(sample(registry, "cache_hits_total", layer="redis", type="user"))
            stop.wait(0.002)

    scraper = threading.Thread(target=scrape)
    scraper.start()
    workers = [threading.Thread(target=work) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    stop.set()
    scraper.join()
    total = threads * per_thread
    assert sample(registry, "cache_hits_total", layer="redis", type="user") == total / 2
    assert sample(registry, "cache_misses_total", layer="redis", type="user") == total / 2
    assert sample(registry, "cache_latency_seconds_count", layer="redis", operation="get") == total
    assert scrapes == sorted(scrapes), "a scrape saw the hit counter go backwards"


# sync only: a dropped redis.asyncio client warns of its open connections (aclose() is required)
def test_a_dropped_service_still_counts_its_last_calls(redis_url: str) -> None:
    registry = CollectorRegistry()
    service = CacheService.from_url(redis_url, registry=registry)
    service.get(service.key("user", "never-set"))
    assert len(service._rec.events) == 1  # queued, not applied yet
    del service
    gc.collect()
    assert sample(registry, "cache_misses_total", layer="redis", type="user") == 1


def test_keys_that_are_not_str_never_break_a_scrape(
    cache: Cache, registry: CollectorRegistry
) -> None:
    cache.redis.set(b"user:raw", b'"v"')
    assert cache.get(b"user:raw") == "v"  # type: ignore[arg-type]  # redis-py takes bytes
    generate_latest(registry)
    assert sample(registry, "cache_hits_total", layer="redis", type="other") == 1


def test_keys_that_are_not_str_still_fail_open_while_redis_is_down(make_cache: MakeCache) -> None:
    registry = CollectorRegistry()
    service = make_cache(f"redis://127.0.0.1:{free_port()}/0", registry=registry)
    for _ in range(service.breaker.threshold + 2):  # errors, then the open breaker
        assert service.get(b"user:raw") is None  # type: ignore[arg-type]
        assert service.mget([b"user:raw"]) == [None]  # type: ignore[list-item]
    service.close()
    assert sample(registry, "cache_misses_total", layer="redis", type="other") == 2 * (
        service.breaker.threshold + 2
    )


def test_a_scrape_waits_for_events_another_thread_is_applying(
    cache: Cache, registry: CollectorRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(10):
        cache.get(cache.key("user", str(n)))  # ten misses queued
    real = recorder._plan
    popped = threading.Event()

    def slow(batch: list[recorder.Event], instruments: Instruments) -> recorder.Plan:
        popped.set()  # the applier has taken the events and is preempted
        time.sleep(0.3)
        return real(batch, instruments)

    monkeypatch.setattr(recorder, "_plan", slow)
    applier = threading.Thread(target=cache._rec.flush)
    applier.start()
    popped.wait()
    monkeypatch.setattr(recorder, "_plan", real)
    assert sample(registry, "cache_misses_total", layer="redis", type="user") == 10
    applier.join()


# A dropped service is freed by the cyclic garbage collector, which may run inside a
# collection holding a metric child's lock, in a thread with no cell for that child yet.
LEFTOVERS_IN_A_COLLECTION = """
import gc, sys, threading
from prometheus_client import CollectorRegistry
from exporter.client import CacheService

registry = CollectorRegistry()
service = CacheService.from_url(sys.argv[1], registry=registry)
service.get(service.key("user", "x"))  # queued: latency of get, a miss of user
latency = service._i.latency["get"]
gc.disable()
del service  # in reference cycles: only the collector frees it
gc.set_threshold(1)

def collect():
    gc.enable()
    latency.cells.totals()  # the collector runs under the child's lock
    registry.get_sample_value("cache_misses_total", {"layer": "redis", "type": "user"})
    print(registry.get_sample_value("cache_misses_total", {"layer": "redis", "type": "user"}))

thread = threading.Thread(target=collect, daemon=True)
thread.start()
thread.join(20)
print("deadlocked" if thread.is_alive() else "done", flush=True)
"""


# sync only: a script dropping a service unclosed, as above
def test_a_dropped_services_events_never_deadlock_a_collection(redis_url: str) -> None:
    run = subprocess.run(
        [sys.executable, "-c", LEFTOVERS_IN_A_COLLECTION, redis_url],
        capture_output=True,
        text=True,
        timeout=60,
        env=cleanup_env(),
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["1.0", "done"]


def test_a_batch_that_fails_to_apply_is_retried_per_event_without_counting_twice(
    cache: Cache, registry: CollectorRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    hit, missing = cache.key("user", "h"), cache.key("user", "m")
    cache.set(hit, 1)
    assert list(registry.collect())  # the set applied: only the gets below are queued
    cache.get(hit)
    cache.get(hit)
    cache.get(missing)
    real = recorder.column_counts

    def broken_for_batches(instruments: Instruments, column: tuple[object, ...]) -> object:
        if sum(item is not None for item in column) > 1:
            raise RuntimeError("a bug while counting a batch")
        return real(instruments, column)  # type: ignore[arg-type]

    monkeypatch.setattr(recorder, "column_counts", broken_for_batches)
    cache._rec.flush()  # logs the failure, then applies the events one by one
    monkeypatch.setattr(recorder, "column_counts", real)
    assert sample(registry, "cache_hits_total", layer="redis", type="user") == 2
    assert sample(registry, "cache_misses_total", layer="redis", type="user") == 1
    assert sample(registry, "cache_latency_seconds_count", layer="redis", operation="get") == 3
