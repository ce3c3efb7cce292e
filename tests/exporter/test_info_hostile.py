"""INFO replies no real Redis gives: every scrape still serves ``redis_up`` and the
exporter's own metrics, a field that does not parse is skipped and counted, every
family keyed by a name Redis returns is capped, and the deadline covers parsing.

Malformed, hostile and huge replies come from a fake RESP server
(:mod:`tests.support.resp`); the parser is fuzzed with hypothesis.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from exporter import metrics
from exporter.collectors import redis_info
from exporter.collectors.info_parser import MAX_SECTION_LINES, parse_info
from exporter.collectors.redis_info import (
    MAX_COMMANDS,
    MAX_DATABASES,
    MAX_ERROR_PREFIXES,
    MAX_INFO_BYTES,
    MAX_QUANTILES,
    RedisInfoCollector,
    Tally,
    info_metrics,
)
from exporter.config import Settings
from exporter.server import create_app
from tests.exporter.conftest import promtool_check, sample, samples
from tests.support.resp import BASIC_INFO, FakeRedis, basic_handler, bulk, info_reply

INST = "cache:6379"


def _sections(**extra: list[str]) -> dict[str, list[str]]:
    out = {k: list(v) for k, v in BASIC_INFO.items()}
    for name, lines in extra.items():
        out.setdefault(name, [])
        out[name] = out[name] + lines
    return out


class _Fixed(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


def _registry(families: list[Metric]) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(_Fixed(families))
    return registry


def _render(text: str, tally: Tally | None = None) -> str:
    families = list(info_metrics(parse_info(text), INST, tally))
    return generate_latest(_registry(families)).decode()


def _info_answer(reply: bytes) -> Callable[[list[bytes]], bytes | None]:
    """INFO answered with ``reply`` (raw RESP), the rest as an empty Redis would."""
    rest = basic_handler(info_reply())
    return lambda args: reply if args[0].upper() == b"INFO" else rest(args)


def _label_values(text: str, name: str, label: str) -> set[str]:
    return {dict(labels)[label] for (n, labels) in samples(text) if n == name}


@pytest.fixture
def fake() -> Iterator[FakeRedis]:
    with FakeRedis(basic_handler(info_reply())) as server:
        yield server


def _scrape(fake: FakeRedis, timeout: float = 2.0) -> tuple[str, float]:
    collector = RedisInfoCollector(fake.url, instance=fake.address, timeout=timeout)
    registry = CollectorRegistry()
    registry.register(collector)
    started = time.monotonic()
    try:
        return generate_latest(registry).decode(), time.monotonic() - started
    finally:
        collector.close()


# --- item 6: one bad field --------------------------------------------------------------


def test_a_bad_latency_field_leaves_metrics_200_with_redis_up_1_and_counts_it(
    fake: FakeRedis,
) -> None:
    sections = _sections(Latencystats=["latency_percentiles_usec_get:pabc=1.0"])
    fake.handler = basic_handler(info_reply(sections))
    settings = Settings(redis_url=fake.url, scrape_timeout=2.0)
    with TestClient(create_app(settings, background=False)) as client:
        first = client.get("/metrics")
        second = client.get("/metrics")
    assert first.status_code == second.status_code == 200, first.text
    text = second.text
    assert sample(text, "redis_up", instance=fake.address) == 1.0
    assert sample(text, "redis_keyspace_hits_total", instance=fake.address) == 5.0
    # one skipped field per scrape, counted across scrapes
    assert sample(text, metrics.INFO_FIELDS_SKIPPED.name, instance=fake.address) == 2.0


def test_a_table_field_that_is_not_a_number_is_skipped_and_counted() -> None:
    tally = Tally()
    text = _render("# Memory\nused_memory:lots\nmaxmemory:0\n", tally)
    assert "redis_memory_used_bytes{" not in text
    assert sample(text, "redis_memory_max_bytes", instance=INST) == 0.0
    assert tally.skipped == 1


def test_an_info_reply_that_is_not_text_gives_up_0_with_parse_and_no_500(
    fake: FakeRedis,
) -> None:
    fake.handler = _info_answer(b"*1\r\n:1\r\n")
    text, _ = _scrape(fake)
    assert sample(text, "redis_up", instance=fake.address) == 0.0
    assert sample(text, "cache_exporter_last_scrape_error", instance=fake.address, error="parse")


# --- the fuzz: whatever the text, no exception and redis_up ----------------------------

_NAMES = st.one_of(
    st.sampled_from(["get", "set", "other", "OTHER", "", "x" * 200, "a|b", "db0", "p50"]),
    st.text(max_size=12),
)
_VALUES = st.one_of(
    st.sampled_from(["1", "0", "-1", "1.5", "nan", "inf", "-inf", "", "abc", "9" * 400, "1e308"]),
    st.text(max_size=8),
    st.floats(allow_nan=True).map(str),
)
_KEYS = st.one_of(
    st.sampled_from(
        ["calls", "usec", "rejected_calls", "failed_calls", "count", "keys", "expires", "avg_ttl"]
    ),
    st.sampled_from(["p50", "p99", "p99.9", "p99.0", "pabc", "p101", "p-1", "pnan", "p"]),
    st.text(max_size=6),
)
_RECORDS = st.lists(st.tuples(_KEYS, _VALUES), max_size=6).map(
    lambda pairs: ",".join(f"{k}={v}" for k, v in pairs)
)
_PLAIN = [item.field for fields in metrics.REDIS_INFO_FIELDS.values() for item in fields] + list(
    metrics.REDIS_INSTANCE_INFO_FIELDS
)
_LINES = st.one_of(
    st.builds(lambda n, v: f"{n}:{v}", st.sampled_from(_PLAIN), _VALUES),
    st.builds(lambda n, r: f"cmdstat_{n}:{r}", _NAMES, _RECORDS),
    st.builds(lambda n, r: f"latency_percentiles_usec_{n}:{r}", _NAMES, _RECORDS),
    st.builds(lambda n, r: f"errorstat_{n}:{r}", _NAMES, _RECORDS),
    st.builds(
        lambda n, r: f"db{n}:{r}", st.one_of(st.integers(-5, 10**6).map(str), _NAMES), _RECORDS
    ),
    st.builds(
        lambda n: f"# {n}",
        st.one_of(
            st.sampled_from(
                [
                    "Server",
                    "Commandstats",
                    "Latencystats",
                    "Errorstats",
                    "Keyspace",
                    "Memory",
                    "Stats",
                ]
            ),
            st.text(max_size=10),
        ),
    ),
    st.text(max_size=40),
    st.just("x" * 100_000),
    st.just("cmdstat_" + "y" * 50_000 + ":calls=1"),
)
_INFO_TEXT = st.lists(_LINES, max_size=40).map("\r\n".join)


def _unique_series(text: str) -> None:
    seen = Counter(
        (s.name, tuple(sorted(s.labels.items())))
        for family in text_string_to_metric_families(text)
        for s in family.samples
    )
    assert not [key for key, n in seen.items() if n > 1]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_INFO_TEXT)
def test_fuzz_the_parser_never_raises_and_the_output_renders_once_per_series(text: str) -> None:
    tally = Tally()
    info = parse_info(text)
    families = list(info_metrics(info, INST, tally))
    assert tally.skipped >= 0
    registry = _registry(families)
    rendered = generate_latest(registry).decode()
    generate_openmetrics(registry)
    _unique_series(rendered)
    for name, label, cap in (
        ("redis_commands_total", "cmd", MAX_COMMANDS),
        ("redis_db_keys", "db", MAX_DATABASES),
        ("redis_errors_total", "err", MAX_ERROR_PREFIXES),
    ):
        assert len(_label_values(rendered, name, label)) <= cap


class _Canned:
    """A client stand-in answering INFO with fixed bytes (no socket: fast fuzzing)."""

    def __init__(self, reply: object) -> None:
        self.reply = reply
        self.connection_pool = self

    def execute_command(self, *_: object) -> object:
        return self.reply

    def pipeline(self, **_: object) -> _CannedPipeline:
        return _CannedPipeline(self.reply)

    def disconnect(self) -> None:
        pass

    def close(self) -> None:
        pass


class _CannedPipeline:
    """The follow-up commands after INFO (CONFIG GET, CLUSTER INFO) get the same bytes."""

    def __init__(self, reply: object) -> None:
        self.reply = reply
        self.queued = 0

    def execute_command(self, *_: object) -> None:
        self.queued += 1

    def execute(self, **_: object) -> list[object]:
        return [self.reply] * self.queued


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        _INFO_TEXT.map(lambda t: t.encode("utf-8", "surrogatepass")), st.binary(max_size=2000)
    )
)
def test_fuzz_every_reply_gives_redis_up_and_the_self_metrics(reply: bytes) -> None:
    collector = RedisInfoCollector("redis://127.0.0.1:1/0", instance=INST, timeout=5.0)
    collector._client = _Canned(reply)
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    assert sample(text, "redis_up", instance=INST) == 1.0
    assert sample(text, "cache_exporter_scrape_errors_total", instance=INST) == 0.0
    assert sample(text, metrics.INFO_FIELDS_SKIPPED.name, instance=INST) is not None
    _unique_series(text)


# --- item 7: caps, overflow series, dropped counters ---------------------------------------


def test_commands_are_capped_with_an_other_series_holding_the_sum() -> None:
    n = MAX_COMMANDS + 500
    lines = [f"cmdstat_c{i:05d}:calls={i},usec=2,rejected_calls=0,failed_calls=1" for i in range(n)]
    tally = Tally()
    text = _render("# Commandstats\n" + "\n".join(lines), tally)
    cmds = _label_values(text, "redis_commands_total", "cmd")
    assert len(cmds) == MAX_COMMANDS and "other" in cmds
    kept = MAX_COMMANDS - 1
    assert sample(text, "redis_commands_total", instance=INST, cmd="c00000") == 0.0
    assert sample(text, "redis_commands_total", instance=INST, cmd="other") == sum(range(kept, n))
    total = sum(v for (name, _), v in samples(text).items() if name == "redis_commands_total")
    assert total == sum(range(n))  # nothing lost from the sum
    assert sample(text, "redis_commands_duration_seconds_total", instance=INST, cmd="other") == (
        pytest.approx((n - kept) * 2e-6)
    )
    assert tally.dropped["redis_commands_total"] == n - kept


def test_at_the_cap_every_command_keeps_its_own_series() -> None:
    lines = [f"cmdstat_c{i:05d}:calls=1" for i in range(MAX_COMMANDS)]
    tally = Tally()
    text = _render("# Commandstats\n" + "\n".join(lines), tally)
    cmds = _label_values(text, "redis_commands_total", "cmd")
    assert len(cmds) == MAX_COMMANDS and "other" not in cmds
    assert not any(tally.dropped.values())


def test_names_that_cannot_be_labels_go_to_other() -> None:
    long = "z" * 500
    text = _render(
        f"# Commandstats\ncmdstat_{long}:calls=3\ncmdstat_get:calls=1\ncmdstat_other:calls=2\n"
    )
    assert _label_values(text, "redis_commands_total", "cmd") == {"get", "other"}
    assert sample(text, "redis_commands_total", instance=INST, cmd="other") == 5.0


def test_databases_are_capped_keys_summed_and_avg_ttl_dropped() -> None:
    n = MAX_DATABASES + 100
    lines = [f"db{i}:keys=10,expires=1,avg_ttl=500" for i in range(n)]
    tally = Tally()
    text = _render("# Keyspace\n" + "\n".join(lines), tally)
    dbs = _label_values(text, "redis_db_keys", "db")
    assert len(dbs) == MAX_DATABASES
    # numeric order: db0..db62 keep their series (db10 sorts after db9, not after db1)
    assert {f"db{i}" for i in range(MAX_DATABASES - 1)} | {"other"} == dbs
    folded = n - (MAX_DATABASES - 1)
    assert sample(text, "redis_db_keys", instance=INST, db="other") == 10.0 * folded
    assert sample(text, "redis_db_keys_expiring", instance=INST, db="other") == 1.0 * folded
    assert sample(text, "redis_db_avg_ttl_seconds", instance=INST, db="other") is None
    assert tally.dropped["redis_db_avg_ttl_seconds"] == folded


def test_latency_commands_and_quantiles_are_capped_and_duplicates_merged() -> None:
    lines = [f"latency_percentiles_usec_c{i:05d}:p50=1,p99=2" for i in range(MAX_COMMANDS + 10)]
    many = ",".join(f"p{q}=1" for q in range(1, MAX_QUANTILES + 10))
    lines += [f"latency_percentiles_usec_a:{many}", "latency_percentiles_usec_b:p99=1,p99.0=2"]
    tally = Tally()
    text = _render("# Latencystats\n" + "\n".join(lines), tally)
    name = "redis_latency_percentiles_seconds"
    assert len(_label_values(text, name, "cmd")) == MAX_COMMANDS - 1  # no "other": not summable
    quantiles = {
        dict(labels)["quantile"]
        for (n, labels) in samples(text)
        if n == name and ("cmd", "a") in labels and "quantile" in dict(labels)
    }
    assert len(quantiles) == MAX_QUANTILES
    assert sample(text, name, instance=INST, cmd="b", quantile="0.99") == 1e-6
    assert tally.dropped[name] > 0
    _unique_series(text)


def test_error_prefixes_beyond_the_cap_are_folded_and_counted() -> None:
    lines = [f"errorstat_E{i:04d}:count=1" for i in range(MAX_ERROR_PREFIXES + 50)]
    tally = Tally()
    text = _render("# Errorstats\n" + "\n".join(lines), tally)
    assert len(_label_values(text, "redis_errors_total", "err")) == MAX_ERROR_PREFIXES
    assert sample(text, "redis_errors_total", instance=INST, err="OTHER") == 51.0
    assert tally.dropped["redis_errors_total"] == 51


def test_lines_past_the_section_cap_are_counted_not_kept() -> None:
    lines = [f"cmdstat_c{i}:calls=1" for i in range(MAX_SECTION_LINES + 5)]
    lines += [f"errorstat_E{i}:count=1" for i in range(3)]
    info = parse_info(
        "# Commandstats\n" + "\n".join(lines[:-3]) + "\n# Errorstats\n" + "\n".join(lines[-3:])
    )
    assert len(info.commandstats) == MAX_SECTION_LINES
    assert info.excess == {"commandstats": 5}
    assert len(info.errorstats) == 3
    tally = Tally()
    list(info_metrics(info, INST, tally))
    assert tally.dropped["redis_commands_total"] == MAX_SECTION_LINES + 5 - (MAX_COMMANDS - 1)


def test_instance_info_labels_are_cut_short() -> None:
    text = _render("# Server\nredis_version:" + "9" * 10_000 + "\n")
    version = _label_values(text, "redis_instance_info", "redis_version").pop()
    assert len(version) == redis_info.MAX_INFO_LABEL_CHARS


def test_126k_commands_scrape_within_the_deadline_with_bounded_series(fake: FakeRedis) -> None:
    """The reported case: 505 k series and an 11 s scrape against a 5 s deadline."""
    stat = "calls=1,usec=1,usec_per_call=1.00,rejected_calls=0,failed_calls=0"
    lines = [f"cmdstat_cmd{i}:{stat}" for i in range(126_000)]
    fake.handler = basic_handler(info_reply(_sections(Commandstats=lines)))
    text, elapsed = _scrape(fake, timeout=5.0)
    assert sample(text, "redis_up", instance=fake.address) == 1.0
    assert elapsed < 5.0
    series = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
    assert series < 1_000
    # the parser keeps MAX_SECTION_LINES lines ("get" and cmd0..cmd9998); of those the
    # first names in sorted order are all "cmd…", and "get" (2 calls) is folded too
    other = sample(text, "redis_commands_total", instance=fake.address, cmd="other")
    assert other == MAX_SECTION_LINES - MAX_COMMANDS + 2
    dropped = sample(
        text, metrics.SERIES_DROPPED.name, instance=fake.address, family="redis_commands_total"
    )
    assert dropped == 126_001 - (MAX_COMMANDS - 1)  # every line without its own series
    assert promtool_check(text).returncode == 0


def test_100k_databases_scrape_with_bounded_series(fake: FakeRedis) -> None:
    lines = [f"db{i}:keys=1,expires=0,avg_ttl=0" for i in range(100_000)]
    fake.handler = basic_handler(info_reply(_sections(Keyspace=lines)))
    text, elapsed = _scrape(fake, timeout=5.0)
    assert sample(text, "redis_up", instance=fake.address) == 1.0
    assert elapsed < 5.0
    assert len(_label_values(text, "redis_db_keys", "db")) == MAX_DATABASES
    other = sample(text, "redis_db_keys", instance=fake.address, db="other")
    assert other == MAX_SECTION_LINES - (MAX_DATABASES - 1)
    dropped = sample(
        text, metrics.SERIES_DROPPED.name, instance=fake.address, family="redis_db_keys"
    )
    assert dropped == 100_000 - (MAX_DATABASES - 1)


# --- the deadline covers parsing; the reply size is bounded -------------------------------


def test_the_deadline_covers_parsing_not_only_the_round_trip(
    fake: FakeRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = redis_info.parse_info

    def slow(text: str, **kwargs: object) -> object:
        time.sleep(1.5)
        return real(text)

    monkeypatch.setattr(redis_info, "parse_info", slow)
    text, elapsed = _scrape(fake, timeout=0.3)
    assert elapsed < 1.0
    assert sample(text, "redis_up", instance=fake.address) == 0.0
    assert sample(text, "cache_exporter_last_scrape_error", instance=fake.address, error="timeout")


def test_a_reply_over_the_size_cap_is_refused_unread(fake: FakeRedis) -> None:
    header = b"$%d\r\n" % (MAX_INFO_BYTES + 1)
    fake.handler = _info_answer(header + b"x" * 1024)
    text, elapsed = _scrape(fake, timeout=2.0)
    assert sample(text, "redis_up", instance=fake.address) == 0.0
    assert sample(text, "cache_exporter_last_scrape_error", instance=fake.address, error="parse")
    assert elapsed < 1.0  # refused from the header, not after waiting for 32 MB


def test_a_reply_just_under_the_cap_is_read(fake: FakeRedis) -> None:
    body = "# Stats\r\nkeyspace_hits:7\r\n# Pad\r\n" + "pad:" + "x" * (2 * 1024 * 1024) + "\r\n"
    fake.handler = _info_answer(bulk(body))
    text, _ = _scrape(fake, timeout=2.0)
    assert sample(text, "redis_keyspace_hits_total", instance=fake.address) == 7.0


def test_a_line_without_end_is_refused_before_it_fills_memory(fake: FakeRedis) -> None:
    fake.handler = _info_answer(b"+" + b"y" * (1024 * 1024))
    text, _ = _scrape(fake, timeout=2.0)
    assert sample(text, "redis_up", instance=fake.address) == 0.0
    assert sample(text, "cache_exporter_last_scrape_error", instance=fake.address, error="parse")


def test_the_hostile_scrape_output_passes_promtool(fake: FakeRedis) -> None:
    lines = [f"cmdstat_c{i}:calls=1,usec=1" for i in range(500)]
    lat = [f"latency_percentiles_usec_c{i}:p50=1,p99=2" for i in range(500)]
    dbs = [f"db{i}:keys=1,expires=0,avg_ttl=0" for i in range(500)]
    fake.handler = basic_handler(
        info_reply(_sections(Commandstats=lines, Latencystats=lat, Keyspace=dbs))
    )
    text, _ = _scrape(fake)
    result = promtool_check(text)
    assert result.returncode == 0, result.stdout + result.stderr


def test_skipped_fields_and_dropped_series_are_logged_once_a_streak_not_per_scrape(
    fake: FakeRedis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="exporter")
    lines = [f"cmdstat_c{i}:calls=1" for i in range(MAX_COMMANDS + 1)]
    bad = ["latency_percentiles_usec_get:pabc=1.0"]
    fake.handler = basic_handler(info_reply(_sections(Commandstats=lines, Latencystats=bad)))
    collector = RedisInfoCollector(fake.url, instance=fake.address, timeout=2.0)
    registry = CollectorRegistry()
    registry.register(collector)
    try:
        for _ in range(3):
            generate_latest(registry)
    finally:
        collector.close()
    said = [r for r in caplog.records if "INFO of Redis" in r.getMessage()]
    warnings = [r.getMessage() for r in said if r.levelno == logging.WARNING]
    assert len(said) == 6 and len(warnings) == 2
    assert "1 fields do not parse" in warnings[0]
    assert "'latency_percentiles_usec_get'" in warnings[0]
    assert "redis_commands_total 3" in warnings[1]  # the last two c… in sorted order, and get
