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
