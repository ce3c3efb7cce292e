"""Fail open: a dead or returning Redis never fails the caller, and the breaker recovers."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pytest
import redis
from prometheus_client import CollectorRegistry, generate_latest

from exporter.client.breaker import CircuitBreaker
from exporter.metrics import ERROR_CLASSES
from tests.client.both import Cache
from tests.client.conftest import MakeCache, sample
from tests.support.processes import RedisServer, free_port


def errors(registry: CollectorRegistry, op: str) -> dict[str, float]:
    return {
        err: sample(registry, "cache_errors_total", layer="redis", operation=op, error=err)
        for err in ERROR_CLASSES
    }


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached before the deadline"
        time.sleep(0.01)


def test_breaker_opens_probes_and_closes() -> None:
    now = [0.0]
    br = CircuitBreaker(threshold=3, cooldown=1.0, clock=lambda: now[0])
    for _ in range(2):
        br.failure()
    assert br.state == "closed"
    br.failure()
    assert br.state == "open" and not br.allow()
    now[0] = 1.0
    assert br.state == "half-open"
    assert br.allow(), "one probe after the cooldown"
    assert not br.allow(), "only one probe per cooldown"
    br.failure()  # probe failed: open for another cooldown
    assert not br.allow()
    now[0] = 2.5
    assert br.allow()
    br.success()
    assert br.state == "closed" and br.failures == 0


def test_dead_redis_reads_miss_writes_drop_and_breaker_skips(
    make_cache: MakeCache, registry: CollectorRegistry, redis_factory: Callable[..., RedisServer]
) -> None:
    port = free_port()  # nothing listens here yet
    cache = make_cache(
        # a cooldown long enough for the checks below on a loaded machine (0.2 s ran
        # out before them at a load of 20 on 2 cores)
        f"redis://127.0.0.1:{port}/0", registry=registry, breaker_threshold=3, breaker_cooldown=1.0
    )
    key = cache.key("user", "1")
    for _ in range(3):
        assert cache.get(key) is None
    assert errors(registry, "get")["connection"] == 3
    assert cache.breaker.state == "open"
    assert cache.set(key, 1) is False
    assert cache.mget([key, key]) == [None, None]
    assert cache.incr(cache.key("rate-limit", "u", tenant="t")) is None
    assert cache.delete_pattern(cache.pattern("user")) == 0
    assert errors(registry, "set")["circuit_open"] == 1
    assert errors(registry, "mget")["circuit_open"] == 1
    assert sample(registry, "cache_misses_total", layer="redis", type="user") == 5
    calls = []
    assert cache.get_or_compute(key, lambda: calls.append(1) or "from source") == "from source"
    assert calls == [1]

    redis_factory(port=port)  # Redis comes (back)
    deadline = time.monotonic() + 5
    while cache.breaker.state == "open" and time.monotonic() < deadline:
        time.sleep(0.05)  # the breaker's cooldown: the next call is the probe
    assert cache.set(key, "back") is True
    assert cache.breaker.state == "closed"
    assert cache.get(key) == "back"
    cache.close()


def test_kill_mid_load_from_threads_then_restart_recovers(
    make_cache: MakeCache, registry: CollectorRegistry, redis_factory: Callable[..., RedisServer]
) -> None:
    server = redis_factory()
    cache = make_cache(server.url, registry=registry, breaker_threshold=3, breaker_cooldown=0.1)
    stop = threading.Event()
    failures: list[BaseException] = []
    ops = [0]

    def load(n: int) -> None:
        key = cache.key("user", str(n))
        try:
            while not stop.is_set():
                cache.set(key, n)
                cache.get(key)
                cache.mget([key, cache.key("session", str(n))])
                cache.get_or_compute(cache.key("permissions", str(n)), lambda: {"p": n})
                cache.incr(cache.key("rate-limit", "r", tenant=str(n)))
                ops[0] += 1
        except BaseException as exc:  # any exception reaching a caller fails the test
            failures.append(exc)

    threads = [threading.Thread(target=load, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    wait_until(lambda: sample(registry, "cache_hits_total", layer="redis", type="user") > 20)
    server.kill()
    wait_until(
        lambda: errors(registry, "get")["connection"] + errors(registry, "get")["circuit_open"] > 10
    )
    hits_while_down = sample(registry, "cache_hits_total", layer="redis", type="user")
    server.start()  # same port
    wait_until(
        lambda: (
            sample(registry, "cache_hits_total", layer="redis", type="user") > hits_while_down + 20
        )
    )
    stop.set()
    for t in threads:
        t.join(10)
    assert failures == []
    assert cache.breaker.state == "closed"
    ops = ("get", "set", "mget", "get_or_compute", "incr")
    assert sum(errors(registry, op)["connection"] for op in ops) >= 1
    assert errors(registry, "get")["circuit_open"] >= 1, "the breaker stopped hammering Redis"
    cache.close()


def test_slow_redis_times_out_as_a_counted_miss(
    make_cache: MakeCache, registry: CollectorRegistry, redis_factory: Callable[..., RedisServer]
) -> None:
    server = redis_factory("--enable-debug-command", "yes")
    cache = make_cache(server.url, registry=registry, socket_timeout=0.05)
    admin = redis.Redis.from_url(server.url)
    blocker = threading.Thread(target=lambda: admin.execute_command("DEBUG", "SLEEP", "0.3"))
    blocker.start()
    time.sleep(0.05)
    assert cache.get(cache.key("user", "1")) is None
    blocker.join()
    assert errors(registry, "get")["timeout"] == 1
    cache.close()
    admin.close()


def test_passwords_never_reach_logs_or_metrics(
    make_cache: MakeCache, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"redis://:s3cret-pw@127.0.0.1:{free_port()}/0"
    cache = make_cache(url, registry=registry, breaker_threshold=1)
    cache.get(cache.key("user", "1"))
    cache.get(cache.key("user", "1"))  # skipped by the open breaker
    cache.set(cache.key("user", "1"), 1)
    assert "s3cret" not in caplog.text
    assert "s3cret" not in generate_latest(registry).decode()
    assert errors(registry, "get")["connection"] == 1
    cache.close()


def test_the_open_circuit_log_line_says_why_and_where(
    make_cache: MakeCache, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    """A newcomer with no Redis running must see which address failed and how."""
    port = free_port()
    cache = make_cache(f"redis://:pw@127.0.0.1:{port}/0", registry=registry, breaker_threshold=1)
    cache.get(cache.key("user", "1"))
    opened = [r.getMessage() for r in caplog.records if "circuit opened" in r.getMessage()]
    assert len(opened) == 1
    assert f"127.0.0.1:{port}" in opened[0]
    assert "connection" in opened[0] and "ConnectionError" in opened[0]
    assert "pw@" not in opened[0]
    cache.close()


def test_a_probe_that_redis_answers_with_an_error_closes_the_breaker(
    cache: Cache, registry: CollectorRegistry
) -> None:
    """After an outage the probe may be a command Redis refuses (WRONGTYPE, OOM under
    noeviction): an answer is proof Redis is back, so the breaker must close."""
    now = [0.0]
    cache.breaker = CircuitBreaker(threshold=1, cooldown=1.0, clock=lambda: now[0])
    listy = cache.key("rate-limit", "r", tenant="t")
    cache.redis.rpush(listy, b"x")  # INCR on it is answered with WRONGTYPE
    cache.breaker.failure()  # the outage
    assert cache.get(cache.key("user", "1")) is None
    assert errors(registry, "get")["circuit_open"] == 1
    now[0] = 1.0
    assert cache.incr(listy) is None  # the probe: answered, with an error
    assert errors(registry, "incr")["response"] == 1
    assert cache.breaker.state == "closed"
    cache.set(cache.key("user", "1"), 1)
    assert cache.get(cache.key("user", "1")) == 1
