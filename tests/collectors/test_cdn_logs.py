"""The CDN log reader on log files it is handed: CloudFront lines built from AWS'
documented field list, nginx lines in the documented log_format, rotation,
restarts, and hostile lines.  The real nginx in front of a real app is in
tests/test_edge_nginx.py."""

from __future__ import annotations

import gzip
import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from exporter.collectors.cdn_logs import (
    CLOUDFRONT_FIELDS,
    MAX_LINE,
    CdnLogCollector,
    Source,
)
from tests.support.cloudfront import AWS_FIELDS, cf_file, cf_line


@pytest.fixture(autouse=True)
def _close_readers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every reader a test makes closes its followed files at the end."""
    made: list[CdnLogCollector] = []
    original = CdnLogCollector.__init__

    def init(self: CdnLogCollector, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(CdnLogCollector, "__init__", init)
    yield
    for reader in made:
        reader.close()


def samples(collector: CdnLogCollector) -> dict[tuple[str, ...], float]:
    registry = CollectorRegistry()
    registry.register(collector)
    found: dict[tuple[str, ...], float] = {}
    for family in registry.collect():
        for sample in family.samples:
            found[(sample.name, *sorted(sample.labels.items()))] = sample.value  # type: ignore[arg-type]
    return found


def cdn(collector: CdnLogCollector, kind: str, type_: str) -> float:
    name = f"cache_{kind}_total"
    return samples(collector)[(name, ("layer", "cdn"), ("type", type_))]


def lines_of(collector: CdnLogCollector, fmt: str, outcome: str) -> float:
    key = ("cache_exporter_cdn_log_lines_total", ("format", fmt), ("outcome", outcome))
    return samples(collector)[key]


def nginx_line(uri: str, cache: str, **extra: str) -> str:
    pairs = {"time": "2026-11-29T17:00:00+00:00", "method": "GET", "uri": uri, "status": "200"}
    pairs.update(cache=cache, **extra)
    return "\t".join(f"{k}={v}" for k, v in pairs.items())


def test_cloudfront_result_types_count_as_hits_misses_or_nothing(tmp_path: Path) -> None:
    logs = tmp_path / "cf"
    logs.mkdir()
    cf_file(
        logs / "E2EXAMPLE.2026-11-29-17.a1b2c3.gz",
        [
            cf_line("/api/users/1", "Hit"),
            cf_line("/api/users/2", "RefreshHit"),
            cf_line("/api/users/3", "Miss"),
            cf_line("/static/app.3f2a.js", "Hit"),
            cf_line("/static/app.3f2a.js", "Miss"),
            cf_line("/index.html", "Hit"),
            cf_line("/downloads/report.pdf", "Miss"),
            cf_line("/api/users/4", "Error"),
            cf_line("/api/users/5", "LimitExceeded"),
            cf_line("/api/users/6", "CapacityExceeded"),
            cf_line("/old", "Redirect"),
        ],
    )
    reader = CdnLogCollector([Source("cloudfront", logs)], tmp_path / "state.json")
    reader.poll()
    assert cdn(reader, "hits", "api") == 2
    assert cdn(reader, "misses", "api") == 1
    assert (cdn(reader, "hits", "asset"), cdn(reader, "misses", "asset")) == (1, 1)
    assert cdn(reader, "hits", "html") == 1
    assert cdn(reader, "misses", "other") == 1
    # 4 results without a cache lookup + the #Version and #Fields lines
    assert lines_of(reader, "cloudfront", "ignored") == 6
    assert lines_of(reader, "cloudfront", "malformed") == 0


def test_cloudfront_columns_come_from_the_fields_header(tmp_path: Path) -> None:
    """A distribution logging extra (newer) fields, or in another order, still reads."""
    logs = tmp_path / "cf"
    logs.mkdir()
    fields = [*reversed(AWS_FIELDS), "origin-fbl", "origin-lbl", "asn", "c-country"]
    cf_file(logs / "a.gz", [cf_line("/api/x", "Hit", fields), cf_line("/api/y", "Miss", fields)],
            fields)  # fmt: skip
    reader = CdnLogCollector([Source("cloudfront", logs)], tmp_path / "state.json")
    reader.poll()
    assert (cdn(reader, "hits", "api"), cdn(reader, "misses", "api")) == (1, 1)
    assert list(CLOUDFRONT_FIELDS) == AWS_FIELDS  # the default when a file has no header


def test_each_cloudfront_file_is_counted_once_across_restarts(tmp_path: Path) -> None:
    logs = tmp_path / "cf"
    logs.mkdir()
    state = tmp_path / "state.json"
    cf_file(logs / "a.gz", [cf_line("/api/a", "Hit")] * 3)
    first = CdnLogCollector([Source("cloudfront", logs)], state)
    first.poll()
    first.poll()
    assert cdn(first, "hits", "api") == 3
    cf_file(logs / "b.gz", [cf_line("/api/b", "Hit")] * 2)
    again = CdnLogCollector([Source("cloudfront", logs)], state)  # a restart
    again.poll()
    assert cdn(again, "hits", "api") == 2  # only the new file


def test_a_directory_that_keeps_every_log_is_read_on_without_counting_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More files than names remembered (an S3 sync keeps them all): the oldest names go
    behind a watermark, new files are still read, none is read twice, across restarts."""
    from exporter.collectors import cdn_logs

    monkeypatch.setattr(cdn_logs, "MAX_REMEMBERED", 4)
    logs, state = tmp_path / "cf", tmp_path / "state.json"
    logs.mkdir()
    total = 0
    for batch in range(4):
        for i in range(3):
            cf_file(logs / f"E1.2026-11-29-{batch:02d}.{i}.gz", [cf_line("/api/a", "Hit")])
        collector = CdnLogCollector([Source("cloudfront", logs)], state)  # a restart each time
        collector.poll()
        collector.poll()
        total += cdn(collector, "hits", "api")
    assert total == 12


def test_a_gzip_still_being_written_waits_and_a_corrupt_one_is_given_up(tmp_path: Path) -> None:
    logs = tmp_path / "cf"
    logs.mkdir()
    whole = gzip.compress(("\n".join([cf_line("/api/a", "Hit")] * 50) + "\n").encode())
    (logs / "a.gz").write_bytes(whole[: len(whole) // 2])
    (logs / "b.gz").write_bytes(b"\x1f\x8b" + os.urandom(200))
    reader = CdnLogCollector([Source("cloudfront", logs)], tmp_path / "state.json")
    reader.poll()
    assert cdn(reader, "hits", "api") == 0
    (logs / "a.gz").write_bytes(whole)  # the upload finished
    reader.poll()
    assert cdn(reader, "hits", "api") == 50
    key = ("cache_exporter_cdn_log_files_total", ("format", "cloudfront"), ("outcome", "bad"))
    assert samples(reader)[key] == 1


def test_hostile_cloudfront_lines_are_counted_not_fatal(tmp_path: Path) -> None:
    logs = tmp_path / "cf"
    logs.mkdir()
    huge = cf_line("/api/" + "x" * (4 * MAX_LINE), "Hit")
    body = (
        "\n".join(
            [
                "#Fields: " + " ".join(AWS_FIELDS),
                cf_line("/api/ok", "Hit"),
                "only\tthree\tfields",  # wrong field count
                cf_line("/api/odd", "Teleported"),  # unknown result type
                huge,
                cf_line("/api/ok", "Miss"),
            ]
        ).encode()
        + b"\n\x00\xff\xfe binary \x00\t\t\n"
        + cf_line("/api/last", "Hit").encode()
    )
    (logs / "a.gz").write_bytes(gzip.compress(body))
    reader = CdnLogCollector([Source("cloudfront", logs)], tmp_path / "state.json")
    reader.poll()
    assert (cdn(reader, "hits", "api"), cdn(reader, "misses", "api")) == (2, 1)
    assert lines_of(reader, "cloudfront", "malformed") == 3
    assert lines_of(reader, "cloudfront", "oversized") == 1


def test_nginx_statuses_map_to_hits_and_misses(tmp_path: Path) -> None:
    log_file = tmp_path / "cache.log"
    statuses = ["HIT", "STALE", "UPDATING", "REVALIDATED", "MISS", "EXPIRED", "BYPASS", "-"]
    log_file.write_text("".join(nginx_line("/api/a", s, extra="x") + "\n" for s in statuses))
    reader = CdnLogCollector([Source("nginx", log_file)], tmp_path / "state.json")
    reader.poll()
    assert (cdn(reader, "hits", "api"), cdn(reader, "misses", "api")) == (4, 3)
    assert lines_of(reader, "nginx", "ignored") == 1


def test_nginx_partial_lines_wait_and_restarts_resume_where_they_stopped(tmp_path: Path) -> None:
    log_file = tmp_path / "cache.log"
    state = tmp_path / "state.json"
    with open(log_file, "w") as out:
        out.write(nginx_line("/api/a", "HIT") + "\n" + nginx_line("/api/b", "MI"))
    reader = CdnLogCollector([Source("nginx", log_file)], state)
    reader.poll()
    assert (cdn(reader, "hits", "api"), cdn(reader, "misses", "api")) == (1, 0)
    with open(log_file, "a") as out:
        out.write("SS\n")  # the partial line is finished
    reader.poll()
    assert cdn(reader, "misses", "api") == 1
    reader.stop()
    with open(log_file, "a") as out:
        out.write(nginx_line("/api/c", "HIT") + "\n")
    restarted = CdnLogCollector([Source("nginx", log_file)], state)
    restarted.poll()
    assert (cdn(restarted, "hits", "api"), cdn(restarted, "misses", "api")) == (1, 0)


def test_nginx_rotation_by_rename_and_by_truncation(tmp_path: Path) -> None:
    log_file = tmp_path / "cache.log"
    log_file.write_text(nginx_line("/api/a", "HIT") + "\n")
    reader = CdnLogCollector([Source("nginx", log_file)], tmp_path / "state.json")
    reader.poll()
    with open(log_file, "a") as out:  # written after the last poll, before the rename
        out.write(nginx_line("/api/a", "HIT") + "\n")
    log_file.rename(tmp_path / "cache.log.1")
    log_file.write_text(nginx_line("/api/a", "MISS") + "\n")
    reader.poll()
    assert (cdn(reader, "hits", "api"), cdn(reader, "misses", "api")) == (2, 1)
    log_file.write_text(nginx_line("/static/x.css", "HIT") + "\n")  # copytruncate
    reader.poll()
    assert cdn(reader, "hits", "asset") == 1
    assert (cdn(reader, "hits", "api"), cdn(reader, "misses", "api")) == (2, 1)


def test_rotation_while_stopped_finishes_the_renamed_file(tmp_path: Path) -> None:
    log_file = tmp_path / "cache.log"
    state = tmp_path / "state.json"
    log_file.write_text(nginx_line("/api/a", "HIT") + "\n")
    CdnLogCollector([Source("nginx", log_file)], state).poll()
    with open(log_file, "a") as out:
        out.write(nginx_line("/api/b", "MISS") + "\n")
    log_file.rename(tmp_path / "cache.log.1")
    log_file.write_text(nginx_line("/api/c", "HIT") + "\n")
    restarted = CdnLogCollector([Source("nginx", log_file)], state)
    restarted.poll()
    assert (cdn(restarted, "hits", "api"), cdn(restarted, "misses", "api")) == (1, 1)


def test_a_huge_line_is_skipped_in_bounded_memory(tmp_path: Path) -> None:
    log_file = tmp_path / "cache.log"
    with open(log_file, "wb") as out:
        out.write(nginx_line("/api/a", "HIT").encode() + b"\n")
        out.write(b"uri=/api/" + b"y" * (16 * 1024 * 1024))  # 16 MiB, no newline yet
    reader = CdnLogCollector([Source("nginx", log_file)], tmp_path / "state.json")
    tracemalloc.start()
    reader.poll()
    with open(log_file, "ab") as out:
        out.write(b"z" * 1024 + b"\n" + nginx_line("/api/b", "MISS").encode() + b"\n")
    reader.poll()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2 * 1024 * 1024
    assert (cdn(reader, "hits", "api"), cdn(reader, "misses", "api")) == (1, 1)
    assert lines_of(reader, "nginx", "oversized") == 1


@pytest.mark.parametrize(
    "saved",
    [
        b"\x00garbage",
        b'{"version": 1, "sources": {"nginx:x": {"offset": "abc"}}}',
        b'{"version": 1, "sources": {"nginx:x": {"offset": -5}}}',
        b'{"version": 1, "sources": []}',
        b'{"version": 7, "sources": {}}',
    ],
)
def test_unreadable_state_starts_at_the_logs_end_instead_of_recounting(
    tmp_path: Path, saved: bytes
) -> None:
    log_file = tmp_path / "cache.log"
    state = tmp_path / "state.json"
    log_file.write_text(nginx_line("/api/a", "HIT") + "\n")
    state.write_bytes(saved)
    reader = CdnLogCollector([Source("nginx", log_file)], state)
    reader.poll()
    assert cdn(reader, "hits", "api") == 0
    with open(log_file, "a") as out:
        out.write(nginx_line("/api/a", "HIT") + "\n")
    reader.poll()
    assert cdn(reader, "hits", "api") == 1


def test_the_state_file_is_replaced_atomically(tmp_path: Path) -> None:
    log_file = tmp_path / "cache.log"
    state = tmp_path / "state.json"
    log_file.write_text(nginx_line("/api/a", "HIT") + "\n")
    reader = CdnLogCollector([Source("nginx", log_file)], state)
    reader.poll()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache.log", "state.json"]


@pytest.mark.parametrize("text", ["nginx", "ftp:/x", "cloudfront:", "/var/log/x"])
def test_a_bad_source_names_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match="cloudfront:DIRECTORY or nginx:FILE"):
        Source.parse(text)


def test_a_state_that_cannot_be_written_publishes_nothing_and_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log_file = tmp_path / "cache.log"
    log_file.write_text(nginx_line("/api/a", "HIT") + "\n")
    reader = CdnLogCollector([Source("nginx", log_file)], tmp_path / "state.json")

    def refuse(*args: object) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patched:
        patched.setattr(os, "replace", refuse)
        with pytest.raises(OSError):
            reader.poll()
    assert cdn(reader, "hits", "api") == 0
    with open(log_file, "a") as out:
        out.write(nginx_line("/api/a", "HIT") + "\n")
    reader.poll()
    assert cdn(reader, "hits", "api") == 2  # both lines, each once


def test_an_unreadable_source_is_counted_and_the_others_still_read(tmp_path: Path) -> None:
    (tmp_path / "missing-dir").mkdir()
    log_file = tmp_path / "cache.log"
    log_file.write_text(nginx_line("/api/a", "MISS") + "\n")
    gone = tmp_path / "missing-dir" / "cf"
    reader = CdnLogCollector(
        [Source("cloudfront", gone), Source("nginx", log_file)], tmp_path / "state.json"
    )
    reader.poll()
    assert cdn(reader, "misses", "api") == 1
    key = ("cache_exporter_cdn_poll_errors_total", ("format", "cloudfront"))
    assert samples(reader)[key] == 1


def test_postgres_and_cdn_share_one_cache_hits_family(tmp_path: Path) -> None:
    from prometheus_client import generate_latest
    from prometheus_client.core import CounterMetricFamily

    from exporter.collectors._merge import Merged

    class Postgres:
        def describe(self) -> Iterator[CounterMetricFamily]:
            yield CounterMetricFamily("cache_hits", "Reads answered by the cache.", labels=[])

        def collect(self) -> Iterator[CounterMetricFamily]:
            family = CounterMetricFamily("cache_hits", "x", labels=["layer", "type"])
            family.add_metric(["postgres", "buffer"], 7)
            yield family

    log_file = tmp_path / "cache.log"
    log_file.write_text(nginx_line("/api/a", "HIT") + "\n")
    reader = CdnLogCollector([Source("nginx", log_file)], tmp_path / "state.json")
    reader.poll()
    registry = CollectorRegistry()
    registry.register(Merged([Postgres(), reader]))  # type: ignore[list-item]
    text = generate_latest(registry).decode()
    assert text.count("# TYPE cache_hits_total counter") == 1
    assert 'cache_hits_total{layer="postgres",type="buffer"} 7.0' in text
    assert 'cache_hits_total{layer="cdn",type="api"} 1.0' in text


def test_a_fields_header_without_the_needed_columns_makes_its_lines_malformed(
    tmp_path: Path,
) -> None:
    logs = tmp_path / "cf"
    logs.mkdir()
    body = "#Fields: date time sc-status\n2026-11-29\t17:00:00\t200\n" + cf_line("/api/a", "Hit")
    (logs / "a.gz").write_bytes(gzip.compress(body.encode()))
    reader = CdnLogCollector([Source("cloudfront", logs)], tmp_path / "state.json")
    reader.poll()
    assert cdn(reader, "hits", "api") == 0
    assert lines_of(reader, "cloudfront", "malformed") == 3  # the header and both lines


@pytest.mark.parametrize(
    "line",
    [
        b"\x00\xff\xfe\x01binary\x00",
        b"uri=/api/a\tstatus=200",  # no cache field
        b"uri=/api/a\tcache=WARP",  # unknown status
        b"cache=HIT\tstatus=200",  # no uri
        b"uri=relative\tcache=HIT",
        b"uri=/api/\xff\xfe\tcache=HIT",  # not UTF-8: counted, path decoded with U+FFFD
        b"",
    ],
)
def test_hostile_nginx_lines(tmp_path: Path, line: bytes) -> None:
    log_file = tmp_path / "cache.log"
    log_file.write_bytes(line + b"\n" + nginx_line("/api/ok", "MISS").encode() + b"\n")
    reader = CdnLogCollector([Source("nginx", log_file)], tmp_path / "state.json")
    reader.poll()
    assert cdn(reader, "misses", "api") == 1
    counted = cdn(reader, "hits", "api")
    malformed = lines_of(reader, "nginx", "malformed")
    assert (counted, malformed) == ((1, 0) if b"\xff\xfe\tcache" in line else (0, 1))
