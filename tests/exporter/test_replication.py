"""Replication, CONFIG and cluster follow-ups of the INFO collector: bounded on
hostile replies, and a disabled CONFIG never fails the scrape."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, generate_latest

from exporter import metrics
from exporter.collectors.info_parser import parse_info
from exporter.collectors.redis_info import (
    MAX_REPLICAS,
    RedisInfoCollector,
    Tally,
    info_metrics,
)
from tests.exporter.conftest import promtool_check, sample, samples
from tests.support.processes import RedisServer

INST = "cache:6379"


def _render(text: str, tally: Tally) -> str:
    registry = CollectorRegistry()

    class Once:
        def collect(self):  # type: ignore[no-untyped-def]
            return info_metrics(parse_info(text), INST, tally)

    registry.register(Once())  # type: ignore[arg-type]
    return generate_latest(registry).decode()


def test_replicas_past_the_cap_are_dropped_and_counted() -> None:
    n = MAX_REPLICAS + 10
    lines = [
        f"slave{i}:ip=10.0.0.{i % 250},port={7000 + i},state=online,offset={i},lag=1"
        for i in range(n)
    ]
    tally = Tally()
    text = _render("# Replication\nrole:master\n" + "\n".join(lines), tally)
    offsets = [k for k in samples(text) if k[0] == "redis_connected_slave_offset_bytes"]
    assert len(offsets) == MAX_REPLICAS
    assert tally.dropped["redis_connected_slave_offset_bytes"] == 10
    assert tally.dropped["redis_connected_slave_lag_seconds"] == 10


def test_hostile_replication_values_become_short_printable_labels_or_are_skipped() -> None:
    long_host = "h" * 5000
    info = (
        "# Replication\nrole:slave\n"
        f"master_host:{long_host}\x07\nmaster_port:6379\nmaster_link_status:down\n"
        "master_last_io_seconds_ago:soon\nmaster_sync_in_progress:0\nslave_repl_offset:12\n"
        "slave_read_only:1\n"
    )
    tally = Tally()
    text = _render(info, tally)
    assert tally.skipped == 1  # master_last_io_seconds_ago
    link = {"master_host": "h" * 100, "master_port": "6379"}
    assert sample(text, "redis_master_link_up", instance=INST, **link) == 0.0
    assert sample(text, "redis_slave_repl_offset", instance=INST, **link) == 12.0
    assert promtool_check(text).returncode == 0


def _scrape(url: str) -> str:
    registry = CollectorRegistry()
    collector = RedisInfoCollector(url, instance=INST)
    registry.register(collector)
    text = generate_latest(registry).decode()
    collector.close()
    return text


def test_a_renamed_config_command_does_not_fail_the_scrape(
    redis_factory: Callable[..., RedisServer],
) -> None:
    server = redis_factory("--rename-command", "CONFIG", "")
    text = _scrape(server.url)
    assert sample(text, "redis_up", instance=INST) == 1.0
    assert sample(text, metrics.REDIS_CONFIG_UP.name, instance=INST) == 0.0
    assert sample(text, "redis_config_maxclients", instance=INST) is None
    assert sample(text, "redis_connected_clients", instance=INST) is not None


def test_config_values_follow_config_set(redis_factory: Callable[..., RedisServer]) -> None:
    server = redis_factory("--maxclients", "123", "--maxmemory", "64mb")
    text = _scrape(server.url)
    assert sample(text, "redis_config_maxclients", instance=INST) == 123.0
    assert sample(text, "redis_config_maxmemory", instance=INST) == 64 * 1024 * 1024
    assert sample(text, metrics.REDIS_CONFIG_UP.name, instance=INST) == 1.0
    assert promtool_check(text).returncode == 0
