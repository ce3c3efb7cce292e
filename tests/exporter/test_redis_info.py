"""The INFO collector as a prometheus-client collector against a real redis-server."""

from __future__ import annotations

import redis
from prometheus_client import CollectorRegistry, generate_latest

from exporter import metrics
from exporter.collectors.redis_info import (
    MAX_ERROR_PREFIXES,
    RedisInfoCollector,
    bounded_errorstats,
    error_class,
)
from exporter.config import instance_of
from tests.exporter.conftest import sample


def _connections(url: str) -> int:
    r = redis.Redis.from_url(url)
    try:
        return int(r.info("stats")["total_connections_received"])
    finally:
        r.close()


def test_registering_describes_every_family_without_talking_to_redis(redis_url: str) -> None:
    before = _connections(redis_url)
    registry = CollectorRegistry()
    collector = RedisInfoCollector(redis_url, instance=instance_of(redis_url))
    registry.register(collector)
    # our own INFO call above is the only new connection
    assert _connections(redis_url) == before + 1
    names = set(registry._names_to_collectors)
    for spec in (*metrics.REDIS_METRICS, metrics.EXPORTER_LAST_SCRAPE_ERROR):
        assert spec.name in names, spec.name
    assert "redis_latency_percentiles_seconds_count" in names
    collector.close()


def test_each_scrape_yields_new_families_that_follow_redis(redis_url: str) -> None:
    collector = RedisInfoCollector(redis_url, instance=instance_of(redis_url))
    registry = CollectorRegistry()
    registry.register(collector)
    inst = instance_of(redis_url)
    first = generate_latest(registry).decode()
    r = redis.Redis.from_url(redis_url)
    r.get("session:nope")
    r.close()
    second = generate_latest(registry).decode()
    misses = "redis_keyspace_misses_total"
    assert (sample(second, misses, instance=inst) or 0) == (
        sample(first, misses, instance=inst) or 0
    ) + 1
    collector.close()


def test_error_classes_are_bounded_and_never_the_message() -> None:
    cases = {
        redis.ConnectionError("Error 111 connecting to h:1. Connection refused."): "connection",
        redis.TimeoutError("Timeout reading from socket"): "timeout",
        redis.AuthenticationError("invalid username-password pair"): "auth",
        redis.ResponseError("NOAUTH Authentication required."): "auth",
        redis.ResponseError("ERR unknown command"): "response",
        ValueError("not a number"): "parse",
        KeyError("run_id"): "parse",
        redis.InvalidResponse("Protocol Error"): "parse",
        RuntimeError("anything else"): "other",
    }
    for exc, expected in cases.items():
        assert error_class(exc) == expected
        assert expected in metrics.SCRAPE_ERROR_CLASSES


def test_error_prefix_labels_are_capped_and_the_rest_summed() -> None:
    """Redis 6.2 tracks any number of error prefixes; our label set stays bounded."""
    few = {"ERR": 3.0, "WRONGTYPE": 1.0}
    assert bounded_errorstats(few) == few
    many = {f"E{i:04d}": 1.0 for i in range(MAX_ERROR_PREFIXES + 50)}
    capped = bounded_errorstats(many)
    assert len(capped) == MAX_ERROR_PREFIXES
    assert sum(capped.values()) == sum(many.values())
    assert capped["OTHER"] == 51.0


def _sends(collector: RedisInfoCollector) -> list[int]:
    """Counts each request write the collector's connections make (one per round trip)."""
    writes = [0]
    pool = collector._client.connection_pool
    original = pool.connection_class.send_packed_command

    def counting(self: object, *args: object, **kwargs: object) -> None:
        writes[0] += 1
        original(self, *args, **kwargs)  # type: ignore[arg-type]

    pool.connection_class = type("Counting", (pool.connection_class,), {})
    pool.connection_class.send_packed_command = counting
    return writes


def test_config_get_rides_along_with_info_after_the_first_scrape(redis_url: str) -> None:
    collector = RedisInfoCollector(redis_url, instance=instance_of(redis_url))
    writes = _sends(collector)
    try:
        list(collector.collect())  # connects (the handshake writes too)
        collector._expected_cluster = None  # as on a first scrape: nothing known yet
        before = writes[0]
        first = {f.name: f for f in collector.collect()}
        assert writes[0] - before == 2  # INFO, then what it called for (CONFIG GET)
        before = writes[0]
        second = {f.name: f for f in collector.collect()}
        assert writes[0] - before == 1  # INFO and CONFIG GET in one round trip
        assert set(first) == set(second)
        maxclients = [s.value for s in second["redis_config_maxclients"].samples]
        assert maxclients == [s.value for s in first["redis_config_maxclients"].samples]
        assert [s.value for s in second["cache_exporter_redis_config_up"].samples] == [1.0]
    finally:
        collector.close()


def test_a_wrong_guess_of_the_follow_ups_is_corrected_by_what_info_says(redis_url: str) -> None:
    collector = RedisInfoCollector(redis_url, instance=instance_of(redis_url))
    try:
        plain = {f.name for f in collector.collect()}  # INFO, then CONFIG GET
        collector._expected_cluster = True  # as if the node had been a cluster node
        families = {f.name: f for f in collector.collect()}  # ... and CLUSTER INFO with INFO
        assert set(families) == plain  # the refused CLUSTER INFO left no trace
        assert [s.value for s in families["cache_exporter_redis_config_up"].samples] == [1.0]
        assert families["redis_config_maxclients"].samples
        assert collector._expected_cluster is False
    finally:
        collector.close()
