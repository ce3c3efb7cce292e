"""The eviction tracker against real redis-servers: evictions, expirations, restarts."""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest
import redis
from prometheus_client import CollectorRegistry

from exporter.collectors.evictions import EvictionTracker, merged_notify_flags
from exporter.metrics import (
    CACHE_EVICTIONS,
    LAYER_REDIS,
    NOTIFICATION_RECONNECTS,
    NOTIFICATIONS,
    REASON_EXPIRED,
    REASON_MAXMEMORY,
    TYPE_UNATTRIBUTED,
)
from exporter.slo import SLO
from tests.collectors.conftest import seed
from tests.support.processes import RedisServer, free_port

SMALL_MAXMEMORY = ("--maxmemory", "2mb", "--maxmemory-policy", "allkeys-lru")
Counts = dict[str, dict[str, int]]


@pytest.mark.parametrize(
    ("current", "merged"),
    [
        ("", "Exe"),
        ("Kx", "KxEe"),
        ("AKE", "AKE"),  # A includes x and e
        ("KEA", "KEA"),
        ("gxE", "gxEe"),
    ],
)
def test_merged_flags_only_add_what_is_missing(current: str, merged: str) -> None:
    assert merged_notify_flags(current) == merged


def _wait(predicate: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def _settled(
    client: redis.Redis, tracker: EvictionTracker, reason: str, field: str, offset: int = 0
) -> int:
    """Wait until INFO's counter is stable and equals notifications + ``offset``; return it."""
    seen: list[int] = []

    def done() -> bool:
        seen.append(int(client.info("stats")[field]))
        return tracker.notifications()[reason] + offset == seen[-1] and seen[-2:-1] == seen[-1:]

    _wait(done)
    return seen[-1]


def _freeze(client: redis.Redis) -> None:
    """Lift maxmemory: near the limit even INFO or SCAN replies make Redis evict more."""
    client.config_set("maxmemory", 0)


def _limit(client: redis.Redis) -> None:
    client.config_set("maxmemory", SMALL_MAXMEMORY[1])


def _by_type(client: redis.Redis, slo: SLO) -> Counter[str]:
    return Counter(slo.type_of_key(key) for key in client.scan_iter(count=1000))


def _assert_monotonic(history: list[Counts]) -> None:
    for before, after in itertools.pairwise(history):
        for reason, counts in before.items():
            for kind, value in counts.items():
                assert after[reason][kind] >= value, (reason, kind)


def test_every_eviction_is_attributed_and_sums_to_info_while_scraped_during_the_burst(
    redis_factory: Callable[..., RedisServer], slo: SLO
) -> None:
    server = redis_factory(*SMALL_MAXMEMORY)
    client = redis.Redis.from_url(server.url)
    tracker = EvictionTracker(server.url, slo, instance="t", configure_notifications=True)
    tracker.start()
    history: list[Counts] = []
    done = threading.Event()

    def scrape() -> None:  # reconciles race the notifications of the burst
        while not done.is_set():
            counts = tracker.reconcile()
            if counts is not None:
                history.append(counts)

    scraper = threading.Thread(target=scrape, daemon=True)
    try:
        assert tracker.wait_until_subscribed(10)
        flags = client.config_get("notify-keyspace-events")["notify-keyspace-events"]
        assert {"E", "x", "e"} <= set(flags)
        scraper.start()
        written = seed(client, 6000, rng=random.Random(4), sizes=(500, 1500))
        _freeze(client)
        done.set()
        scraper.join()
        evicted = _settled(client, tracker, REASON_MAXMEMORY, "evicted_keys")
        final = tracker.reconcile()
        assert final is not None
        history.append(final)
        survivors = _by_type(client, slo)
    finally:
        done.set()
        tracker.stop()
        client.close()
    assert evicted > 1000
    assert len(history) > 2
    _assert_monotonic(history)
    counts = final[REASON_MAXMEMORY]
    assert counts[TYPE_UNATTRIBUTED] == 0
    assert {k: counts[k] for k in written} == {k: written[k] - survivors[k] for k in written}
    assert sum(counts.values()) == evicted
    assert sum(final[REASON_EXPIRED].values()) == 0


def test_every_expiration_is_attributed_to_its_type(
    redis_factory: Callable[..., RedisServer], slo: SLO
) -> None:
    server = redis_factory("--hz", "100")
    client = redis.Redis.from_url(server.url)
    tracker = EvictionTracker(server.url, slo, instance="t", configure_notifications=True)
    tracker.start()
    try:
        assert tracker.wait_until_subscribed(10)
        written = seed(client, 2000, rng=random.Random(5), ttl_ms=(10, 300))
        _wait(lambda: client.dbsize() == 0)
        expired = _settled(client, tracker, REASON_EXPIRED, "expired_keys")
        registry = CollectorRegistry()
        registry.register(tracker)
        labels = {"layer": LAYER_REDIS, "reason": REASON_EXPIRED}
        scraped = {
            kind: registry.get_sample_value(CACHE_EVICTIONS.name, {**labels, "type": kind})
            for kind in (*slo.type_names, TYPE_UNATTRIBUTED)
        }
        notified = registry.get_sample_value(
            NOTIFICATIONS.name, {"instance": "t", "reason": REASON_EXPIRED}
        )
    finally:
        tracker.stop()
        client.close()
    assert expired == 2000
    assert notified == 2000
    assert scraped == {k: float(written.get(k, 0)) for k in scraped}


def test_without_notifications_everything_is_unattributed_and_config_untouched(
    redis_factory: Callable[..., RedisServer], slo: SLO
) -> None:
    server = redis_factory("--hz", "100")
    client = redis.Redis.from_url(server.url)
    tracker = EvictionTracker(server.url, slo, instance="t")  # configure_notifications=False
    tracker.start()
    try:
        assert tracker.wait_until_subscribed(10)
        seed(client, 300, rng=random.Random(6), ttl_ms=(10, 100))
        _wait(lambda: client.dbsize() == 0)
        expired = int(client.info("stats")["expired_keys"])
        counts = tracker.reconcile()
        flags = client.config_get("notify-keyspace-events")["notify-keyspace-events"]
    finally:
        tracker.stop()
        client.close()
    assert flags == ""
    assert counts is not None
    assert counts[REASON_EXPIRED][TYPE_UNATTRIBUTED] == expired == 300
    assert sum(counts[REASON_EXPIRED].values()) == expired


def test_users_own_notification_flags_are_kept(
    redis_factory: Callable[..., RedisServer], slo: SLO
) -> None:
    server = redis_factory("--notify-keyspace-events", "Kg")
    tracker = EvictionTracker(server.url, slo, instance="t", configure_notifications=True)
    tracker.start()
    client = redis.Redis.from_url(server.url)
    try:
        assert tracker.wait_until_subscribed(10)
        flags = client.config_get("notify-keyspace-events")["notify-keyspace-events"]
    finally:
        tracker.stop()
        client.close()
    assert set(flags) == set("KgExe")


def test_redis_killed_and_restarted_keeps_counters_monotonic_and_reconciled(
    redis_factory: Callable[..., RedisServer], slo: SLO
) -> None:
    server = redis_factory(*SMALL_MAXMEMORY)
    client = redis.Redis.from_url(server.url)
    # evictions before the tracker exists: Redis counted them, nobody can say their type
    seed(client, 3000, rng=random.Random(7), sizes=(500, 1500))
    _freeze(client)
    before_start = int(client.info("stats")["evicted_keys"])
    assert before_start > 0
    tracker = EvictionTracker(
        server.url,
        slo,
        instance="t",
        configure_notifications=True,
        reconcile_interval=0.2,
    )
    tracker.start()
    history: list[Counts] = []
    try:
        assert tracker.wait_until_subscribed(10)
        first = tracker.reconcile()
        assert first is not None
        assert first[REASON_MAXMEMORY][TYPE_UNATTRIBUTED] == before_start
        history.append(first)

        # phase 1 on the first run
        survivors = _by_type(client, slo)
        _limit(client)
        written = seed(client, 2000, rng=random.Random(8), start=10_000, sizes=(500, 1500))
        _freeze(client)
        evicted_run1 = _settled(
            client, tracker, REASON_MAXMEMORY, "evicted_keys", offset=before_start
        )
        after1 = _by_type(client, slo)
        phase1 = tracker.reconcile()
        assert phase1 is not None
        history.append(phase1)
        assert sum(phase1[REASON_MAXMEMORY].values()) == evicted_run1
        for kind in written:
            expected = survivors[kind] + written[kind] - after1[kind]
            assert phase1[REASON_MAXMEMORY][kind] - first[REASON_MAXMEMORY][kind] == expected

        # crash: collect still answers (last counters), then Redis comes back empty
        server.kill()
        while_down = tracker.reconcile(timeout=1)
        assert while_down == phase1
        server.start()
        assert tracker.wait_until_subscribed(30, subscriptions=2)
        notified_run1 = tracker.notifications()[REASON_MAXMEMORY]

        # phase 2 on the new run: INFO counts from 0 again
        client = redis.Redis.from_url(server.url)
        written2 = seed(client, 3000, rng=random.Random(9), start=20_000, sizes=(500, 1500))
        _freeze(client)
        evicted_run2 = _settled(
            client, tracker, REASON_MAXMEMORY, "evicted_keys", offset=-notified_run1
        )
        after2 = _by_type(client, slo)
        registry = CollectorRegistry()
        registry.register(tracker)
        phase2 = tracker.reconcile()
        assert phase2 is not None
        history.append(phase2)
        reconnects = registry.get_sample_value(NOTIFICATION_RECONNECTS.name, {"instance": "t"})
    finally:
        tracker.stop()
        client.close()
    assert evicted_run2 > 0
    _assert_monotonic(history)
    assert reconnects == 1
    assert sum(phase2[REASON_MAXMEMORY].values()) == evicted_run1 + evicted_run2
    assert phase2[REASON_MAXMEMORY][TYPE_UNATTRIBUTED] == before_start
    for kind in written2:
        expected = written2[kind] - after2[kind]
        assert phase2[REASON_MAXMEMORY][kind] - phase1[REASON_MAXMEMORY][kind] == expected


def test_registering_does_not_touch_redis(slo: SLO) -> None:
    tracker = EvictionTracker(f"redis://127.0.0.1:{free_port()}/0", slo, instance="down")
    registry = CollectorRegistry()
    registry.register(tracker)  # calls describe(): must not connect
    assert registry.get_sample_value(NOTIFICATION_RECONNECTS.name, {"instance": "down"}) == 0
    assert (
        registry.get_sample_value(
            CACHE_EVICTIONS.name, {"layer": LAYER_REDIS, "type": "user", "reason": REASON_MAXMEMORY}
        )
        is None
    )


def test_password_protected_redis_works_and_a_wrong_password_is_never_logged(
    redis_factory: Callable[..., RedisServer], slo: SLO, caplog: pytest.LogCaptureFixture
) -> None:
    server = redis_factory("--requirepass", "right-horse-battery", "--hz", "100")
    good = EvictionTracker(
        server.url,
        slo,
        instance="t",
        configure_notifications=True,
        redis_kwargs={"password": "right-horse-battery"},
    )
    bad = EvictionTracker(
        server.url, slo, instance="bad", redis_kwargs={"password": "wrong-staple-secret"}
    )
    client = redis.Redis.from_url(server.url, password="right-horse-battery")
    caplog.set_level("DEBUG", logger="exporter")
    good.start()
    bad.start()
    try:
        assert good.wait_until_subscribed(10)
        client.set("user:1", b"x", px=10)
        _wait(lambda: good.notifications()[REASON_EXPIRED] == 1)
        counts = good.reconcile()
        _wait(lambda: "bad" in caplog.text)  # the bad one has failed at least once
        assert bad.reconcile(timeout=1) is None
        assert bad.subscriptions == 0
    finally:
        good.stop()
        bad.stop()
        client.close()
    assert counts is not None
    assert counts[REASON_EXPIRED]["user"] == 1
    assert "wrong-staple-secret" not in caplog.text
    assert "right-horse-battery" not in caplog.text


def test_an_acl_refusing_the_channels_is_reported_once_with_redis_reason(
    redis_factory: Callable[..., RedisServer], slo: SLO, caplog: pytest.LogCaptureFixture
) -> None:
    """A reconnect loop must say why (Redis' NOPERM text) once, not every few seconds."""
    server = redis_factory()
    admin = redis.Redis.from_url(server.url)
    admin.acl_setuser(
        "exporter",
        enabled=True,
        passwords=["+pw-secret"],
        keys=["*"],
        commands=["+@all"],
        reset_channels=True,
    )
    caplog.set_level(logging.DEBUG, logger="exporter")
    url = f"redis://exporter:pw-secret@127.0.0.1:{server.port}/0"
    tracker = EvictionTracker(url, slo, instance="t")
    tracker.start()
    try:
        _wait(lambda: sum("subscription lost" in r.getMessage() for r in caplog.records) >= 3)
    finally:
        tracker.stop()
        admin.close()
    lost = [r for r in caplog.records if "subscription lost" in r.getMessage()]
    warnings = [r for r in lost if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "NOPERM" in warnings[0].getMessage() or "permission" in warnings[0].getMessage()
    assert all(r.levelno == logging.DEBUG for r in lost[1:])
    assert "pw-secret" not in caplog.text


def test_a_prepared_reconcile_is_the_one_the_scrape_serves(
    redis_factory: Callable[..., RedisServer], slo: SLO
) -> None:
    """serve starts the reconcile at the top of a scrape (prepare); collect then waits for
    that one, which read INFO after everything that expired before the scrape began."""
    server = redis_factory("--hz", "100")
    client = redis.Redis.from_url(server.url)
    tracker = EvictionTracker(server.url, slo, instance="t", configure_notifications=True)
    tracker.start()
    try:
        assert tracker.wait_until_subscribed(10)
        written = seed(client, 300, rng=random.Random(6), ttl_ms=(10, 100))
        _wait(lambda: client.dbsize() == 0)
        expired = int(client.info("stats")["expired_keys"])
        requested = tracker._requested
        tracker.prepare()
        counts = tracker.reconcile()
        assert tracker._requested == requested + 1  # no second reconcile was asked for
    finally:
        tracker.stop()
        client.close()
    assert counts is not None
    assert sum(counts[REASON_EXPIRED].values()) == expired == 300
    assert {k: v for k, v in counts[REASON_EXPIRED].items() if v} == {
        k: v for k, v in written.items() if v
    }
