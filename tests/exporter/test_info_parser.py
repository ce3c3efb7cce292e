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
from exporter.collectors.info_parser import RedisInfo, parse_info
from exporter.collectors.redis_info import Tally, convert, info_metrics
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
    ("text", "kept", "skipped"),
    [
        ("# Stats\nkeyspace_hits 12\nkeyspace_misses:3\n", {"keyspace_misses": "3"}, 1),
        ("# Stats\n:nameless\nkeyspace_misses:3\n", {"keyspace_misses": "3"}, 1),
    ],
)
def test_a_line_that_is_not_field_value_is_skipped_and_counted(
    text: str, kept: dict[str, str], skipped: int
) -> None:
    info = parse_info(text)
    assert info.fields["stats"] == kept
    assert info.skipped == skipped


def test_records_that_do_not_parse_are_skipped_and_counted_the_rest_kept() -> None:
    text = (
        "# Commandstats\n"
        "cmdstat_get:calls=two,usec=5\n"
        "cmdstat_set:calls=1,usec=nan,failed_calls=inf\n"
        "cmdstat_del:calls=4,usec=8\n"
        "cmdstat_:calls=1\n"
        "# Latencystats\n"
        "latency_percentiles_usec_get:pabc=1.0,p50=2.0,p101=3,x=4\n"
        "# Errorstats\n"
        "errorstat_ERR:nocount\n"
        "# Keyspace\n"
        "db0:keys\n"
        "dbx:keys=1\n"
        "db1:keys=3,expires=0\n"
    )
    info = parse_info(text)
    assert info.commandstats["get"] == {"usec": 5.0}
    assert info.commandstats["set"] == {"calls": 1.0}
    assert info.commandstats["del"] == {"calls": 4.0, "usec": 8.0}
    assert info.latencystats["get"] == {"p50": 2.0}
    assert info.errorstats == {}
    assert dict(info.keyspace) == {"db0": {}, "db1": {"keys": 3.0, "expires": 0.0}}
    # cmdstat_ (no name), errorstat_ERR, dbx; get, set, the latency line, db0
    assert info.skipped == 7


def test_the_latency_line_that_broke_every_scrape_is_skipped_not_raised() -> None:
    """``pabc`` once reached the quantile conversion and turned /metrics into a 500."""
    info = parse_info("# Latencystats\nlatency_percentiles_usec_get:pabc=1.0\n")
    tally = Tally()
    text = _render_info(info, tally)
    assert "redis_latency_percentiles_seconds{" not in text
    assert tally.skipped == 1


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
        ("nan", "number", None),
        ("inf", "usec", None),
        (16.0, "usec", 16e-6),
    ],
)
def test_convert_is_the_one_value_conversion(
    raw: str | float, unit: metrics.InfoUnit, expected: float | None
) -> None:
    assert convert(raw, unit) == (pytest.approx(expected) if expected is not None else None)


class _Fixed(Collector):
    def __init__(self, info: RedisInfo, tally: Tally | None = None) -> None:
        self.info = info
        self.tally = tally

    def collect(self):  # type: ignore[no-untyped-def]
        return info_metrics(self.info, "cache:6379", self.tally)


def _render_info(info: RedisInfo, tally: Tally | None = None) -> str:
    registry = CollectorRegistry()
    registry.register(_Fixed(info, tally))
    return generate_latest(registry).decode()


def _render(capture: str) -> str:
    return _render_info(parse_info(capture))


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
    info_labels["tcp_port"] = "16399"
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
