"""The pure INFO parser and the INFO-to-metrics tables, on captures of Redis 7 and 6.

``data/info_redis7.txt`` is ``INFO ALL`` captured from the real redis-server 7.0
of the test machine; ``data/info_redis6.txt`` is the same capture trimmed to what
Redis 6.2 reports (no errorstats/latencystats sections, no rejected/failed calls
in commandstats, none of the 7.0-only fields).
"""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.registry import Collector

from exporter import metrics
from exporter.collectors.info_parser import InfoParseError, RedisInfo, parse_info
from exporter.collectors.redis_info import convert, info_metrics
from tests.exporter.conftest import DATA, promtool_check, sample

INFO7 = (DATA / "info_redis7.txt").read_text()
INFO6 = (DATA / "info_redis6.txt").read_text()


@pytest.mark.parametrize(
    ("capture", "section", "field", "expected"),
    [
        (INFO7, "server", "redis_version", "7.0.15"),
        (INFO7, "stats", "keyspace_hits", "2"),
        (INFO7, "stats", "keyspace_misses", "1"),
        (INFO7, "memory", "mem_fragmentation_ratio", "7.70"),
        (INFO7, "memory", "maxmemory_policy", "noeviction"),
        (INFO7, "persistence", "rdb_last_bgsave_status", "ok"),
        (INFO7, "stats", "evicted_clients", "0"),
        (INFO6, "server", "redis_version", "6.2.14"),
        (INFO6, "stats", "keyspace_hits", "2"),
        (INFO6, "stats", "evicted_clients", None),
        (INFO6, "cpu", "used_cpu_sys_main_thread", None),
    ],
)
def test_plain_fields_are_read_by_section_and_missing_ones_are_none(
    capture: str, section: str, field: str, expected: str | None
) -> None:
    assert parse_info(capture).get(section, field) == expected


def test_redis7_record_sections_are_split_into_numbers() -> None:
    info = parse_info(INFO7)
    assert info.commandstats["get"] == {
        "calls": 2.0,
        "usec": 11.0,
        "usec_per_call": 5.5,
        "rejected_calls": 0.0,
        "failed_calls": 0.0,
    }
    assert info.commandstats["hget"]["failed_calls"] == 1.0
    assert info.latencystats["get"] == {"p50": 5.023, "p99": 6.015, "p99.9": 6.015}
    assert info.errorstats == {"WRONGTYPE": 1.0}
    assert info.keyspace == {"db0": {"keys": 1.0, "expires": 0.0, "avg_ttl": 0.0}}


def test_redis6_has_no_latency_or_error_stats_and_no_failed_calls() -> None:
    info = parse_info(INFO6)
    assert info.latencystats == {}
    assert info.errorstats == {}
    assert info.commandstats["get"] == {"calls": 2.0, "usec": 11.0, "usec_per_call": 5.5}


def test_crlf_line_ends_as_redis_sends_them_parse_the_same() -> None:
    assert parse_info(INFO7.replace("\n", "\r\n")) == parse_info(INFO7)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("# Stats\nkeyspace_hits 12\n", "line 2: expected 'field:value'"),
        ("# Commandstats\ncmdstat_get:calls=two\n", "cmdstat_get: calls: expected a number"),
        ("# Keyspace\ndb0:keys\n", "db0: expected key=value pairs"),
    ],
)
def test_malformed_info_is_refused_naming_the_line_or_field(text: str, message: str) -> None:
    with pytest.raises(InfoParseError, match=message):
        parse_info(text)


@pytest.mark.parametrize(
    ("raw", "unit", "expected"),
    [
        ("1234", "number", 1234.0),
        ("7.70", "number", 7.7),
        ("0.00%", "number", 0.0),
        ("1500", "usec", 0.0015),
        ("2500", "msec", 2.5),
        ("ok", "status", 1.0),
        ("err", "status", 0.0),
        ("noeviction", "number", None),
        (16.0, "usec", 16e-6),
    ],
)
def test_convert_is_the_one_value_conversion(
    raw: str | float, unit: metrics.InfoUnit, expected: float | None
) -> None:
    assert convert(raw, unit) == (pytest.approx(expected) if expected is not None else None)


class _Fixed(Collector):
    def __init__(self, info: RedisInfo) -> None:
        self.info = info

    def collect(self):  # type: ignore[no-untyped-def]
        return info_metrics(self.info, "cache:6379")


def _render(capture: str) -> str:
    registry = CollectorRegistry()
    registry.register(_Fixed(parse_info(capture)))
    return generate_latest(registry).decode()


def test_redis7_capture_becomes_the_table_metrics_with_converted_units() -> None:
    text = _render(INFO7)
    inst = {"instance": "cache:6379"}
    assert sample(text, "redis_keyspace_hits_total", **inst) == 2.0
    assert sample(text, "redis_keyspace_misses_total", **inst) == 1.0
    assert sample(text, "redis_memory_used_bytes", **inst) == 990448.0
    assert sample(text, "redis_memory_max_bytes", **inst) == 0.0
    assert sample(text, "redis_memory_used_dataset_bytes", **inst) == 114128.0
    assert sample(text, "redis_mem_fragmentation_ratio", **inst) == 7.7
    assert sample(text, "redis_rdb_last_bgsave_status", **inst) == 1.0
    assert sample(text, "redis_commands_total", cmd="get", **inst) == 2.0
    assert sample(text, "redis_commands_duration_seconds_total", cmd="get", **inst) == 11e-6
    assert sample(text, "redis_commands_failed_calls_total", cmd="hget", **inst) == 1.0
    assert sample(text, "redis_errors_total", err="WRONGTYPE", **inst) == 1.0
    lat = "redis_latency_percentiles_seconds"
    assert sample(text, lat, cmd="get", quantile="0.99", **inst) == pytest.approx(6.015e-6)
    assert sample(text, lat, cmd="get", quantile="0.999", **inst) == pytest.approx(6.015e-6)
    assert sample(text, f"{lat}_count", cmd="get", **inst) == 2.0
    assert sample(text, "redis_db_keys", db="db0", **inst) == 1.0
    info_labels = {"redis_version": "7.0.15", "role": "master", "redis_mode": "standalone"}
    assert (
        sample(text, "redis_instance_info", maxmemory_policy="noeviction", **info_labels, **inst)
        == 1.0
    )


def test_redis6_capture_skips_what_the_older_server_lacks() -> None:
    text = _render(INFO6)
    assert sample(text, "redis_keyspace_hits_total", instance="cache:6379") == 2.0
    assert sample(text, "redis_commands_total", cmd="get", instance="cache:6379") == 2.0
    for absent in (
        "redis_latency_percentiles_seconds",
        "redis_errors_total",
        "redis_commands_failed_calls_total",
        "redis_evicted_clients_total",
        "redis_cpu_sys_main_thread_seconds_total",
    ):
        assert f"\n{absent}" not in text, absent


@pytest.mark.parametrize("capture", [INFO7, INFO6], ids=["redis7", "redis6"])
def test_output_passes_promtool_check_metrics(capture: str) -> None:
    result = promtool_check(_render(capture))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_table_metric_is_a_redis_instance_metric_with_a_base_unit_name() -> None:
    for spec in metrics.REDIS_METRICS:
        assert spec.name.startswith("redis_") and spec.labels[0] == "instance"
        assert not spec.name.endswith(("_sec", "_usec", "_ms")), spec.name
        assert (spec.kind == "counter") == spec.name.endswith("_total"), spec.name
