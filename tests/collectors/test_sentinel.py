"""Sentinel's view as families: hostile or odd SENTINEL replies are bounded and never
fail; statuses and ok counts read the flags as Sentinel's own INFO does."""

from __future__ import annotations

from collections import Counter

from prometheus_client.core import Metric

from exporter import metrics
from exporter.collectors.sentinel import (
    MAX_MASTERS,
    flat_pairs,
    records,
    sentinel_metrics,
    status_of,
)


def _pairs(**fields: str) -> list[bytes]:
    return [item.encode() for kv in fields.items() for item in kv]


def _by_name(families: list[Metric]) -> dict[str, list[tuple[dict[str, str], float]]]:
    return {f.name: [(s.labels, s.value) for s in f.samples] for f in families}


def _master(name: str, flags: str = "master", **extra: str) -> dict[str, str]:
    return {"name": name, "ip": "10.0.0.1", "port": "6379", "flags": flags, **extra}


def test_status_words_follow_the_flags() -> None:
    assert status_of("master") == "ok"
    assert status_of("s_down,master") == "sdown"
    assert status_of("o_down,s_down,master") == "odown"


def test_settings_are_converted_and_ok_counts_leave_out_down_peers() -> None:
    master = _master(
        "cache",
        **{"quorum": "2", "down-after-milliseconds": "5000", "failover-timeout": "60000",
           "num-slaves": "2", "num-other-sentinels": "2", "config-epoch": "7"},
    )  # fmt: skip
    replicas = [_pairs(flags="slave"), _pairs(flags="s_down,slave,disconnected")]
    sentinels = [_pairs(flags="sentinel"), _pairs(flags="o_down,sentinel")]
    dropped: Counter[str] = Counter()
    found = _by_name(list(sentinel_metrics([master], [replicas, sentinels], "s:1", 0, dropped)))
    labels = {"instance": "s:1", "master_name": "cache", "master_address": "10.0.0.1:6379"}
    assert found["redis_sentinel_master_status"] == [({**labels, "master_status": "ok"}, 1.0)]
    assert found["redis_sentinel_master_setting_down_after_seconds"] == [(labels, 5.0)]
    assert found["redis_sentinel_master_setting_failover_timeout_seconds"] == [(labels, 60.0)]
    assert found["redis_sentinel_master_sentinels"] == [(labels, 3.0)]  # others + this one
    assert found["redis_sentinel_master_ok_slaves"] == [(labels, 1.0)]
    assert found["redis_sentinel_master_ok_sentinels"] == [(labels, 2.0)]
    assert not any(dropped.values())


def test_hostile_replies_are_bounded_and_skipped_never_raised() -> None:
    assert flat_pairs(b"nonsense") == {} and flat_pairs([b"odd"]) == {}
    assert records(ValueError("ERR"), 10) == [] and records([b"x", [b"a"]], 10) == []
    weird = _master("n\x00" + "x" * 5000, flags="", quorum="many", **{"num-slaves": "nan"})
    families = list(sentinel_metrics([weird], [ValueError("ERR"), b"junk"], "s:1", 3, Counter()))
    found = _by_name(families)
    ((labels, value),) = found["redis_sentinel_master_status"]
    assert len(labels["master_name"]) == 100 and labels["master_name"].isprintable()
    assert value == 1.0
    assert found["redis_sentinel_master_setting_ckquorum"] == []  # "many" skipped
    assert found["redis_sentinel_master_slaves"] == []  # nan skipped
    assert found["redis_sentinel_master_ok_slaves"][0][1] == 0.0


def test_masters_past_the_cap_are_dropped_and_counted() -> None:
    dropped: Counter[str] = Counter()
    masters = [_master(f"m{i:03d}") for i in range(MAX_MASTERS)]
    list(sentinel_metrics(masters, [], "s:1", 5, dropped))
    assert dropped[metrics.REDIS_SENTINEL_MASTER_STATUS.name] == 5
    assert dropped["redis_sentinel_master_setting_ckquorum"] == 5
