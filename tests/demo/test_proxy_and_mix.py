"""The delaying proxy in front of a real Redis, and the workload's traffic table."""

from __future__ import annotations

import collections
import random
import time

import pytest
import redis

from exporter.demo.command import Snapshot, p99
from exporter.demo.mix import HEALTHY, Chooser, Zipf
from exporter.demo.proxy import DelayProxy
from exporter.slo import load_slo
from tests.support.processes import RedisServer


def test_proxy_forwards_commands_and_values_intact(
    redis_url: str, redis_server: RedisServer
) -> None:
    with DelayProxy("127.0.0.1", redis_server.port) as proxy:
        client = redis.Redis.from_url(proxy.url)
        payload = bytes(range(256)) * 1000  # larger than one forwarded chunk
        client.set("k", payload)
        assert client.get("k") == payload
        assert client.ping()
        client.close()


def test_proxy_delays_every_request_by_at_least_its_delay(
    redis_url: str, redis_server: RedisServer
) -> None:
    with DelayProxy("127.0.0.1", redis_server.port) as proxy:
        client = redis.Redis.from_url(proxy.url)
        client.ping()  # connect first
        proxy.delay = 0.03
        started = time.perf_counter()
        for _ in range(3):
            client.get("missing")
        assert time.perf_counter() - started >= 3 * 0.03
        client.close()


def test_stopping_the_proxy_closes_its_connections(
    redis_url: str, redis_server: RedisServer
) -> None:
    proxy = DelayProxy("127.0.0.1", redis_server.port).start()
    client = redis.Redis.from_url(proxy.url, socket_timeout=2, retry_on_timeout=False)
    assert client.ping()
    proxy.stop()
    with pytest.raises(redis.ConnectionError):
        client.ping()
    client.close()


def test_mix_covers_every_key_type_of_the_slo_file_and_nothing_else() -> None:
    slo = load_slo()
    assert {t.type for t in HEALTHY} == {kt.name for kt in slo.key_types}
    assert sum(t.weight for t in HEALTHY) == pytest.approx(1.0)


def test_zipf_makes_low_ranks_the_most_popular() -> None:
    rng = random.Random(3)
    zipf = Zipf(1000, 1.2)
    counts = collections.Counter(zipf.draw(rng) for _ in range(20_000))
    assert counts[0] > counts[1] > counts[10] > counts[100]
    assert all(0 <= rank < 1000 for rank in counts)


def test_degraded_sessions_are_cold() -> None:
    chooser = Chooser(HEALTHY, seed=5)
    chooser.cold_session_share = 1.0
    sessions = [
        item for row, _, item in (chooser.next() for _ in range(3000)) if row.type == "session"
    ]
    assert len(set(sessions)) > 0.99 * len(sessions)


def test_status_line_p99_is_the_bucket_holding_the_99th_percentile() -> None:
    before = Snapshot(buckets=((0.005, 0.0), (0.01, 0.0), (0.02, 0.0), (float("inf"), 0.0)))
    after = Snapshot(
        buckets=((0.005, 980.0), (0.01, 989.0), (0.02, 1000.0), (float("inf"), 1000.0))
    )
    assert p99(before, after) == 0.02
    after_fast = Snapshot(
        buckets=((0.005, 995.0), (0.01, 1000.0), (0.02, 1000.0), (float("inf"), 1000.0))
    )
    assert p99(before, after_fast) == 0.005
