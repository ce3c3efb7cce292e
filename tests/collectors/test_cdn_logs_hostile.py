"""The CDN log reader against hostile files, state and names: a FIFO or a device where
a log should be, symlinks, unreadable files, gzip bombs, forged or planted state, file
names that would forge log lines.  Each must end in a counted, logged skip within
bounded time and memory, never a stalled thread or an exception out of ``poll``."""

from __future__ import annotations

import builtins
import gzip
import json
import logging
import os
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from exporter.collectors import cdn_logs
from exporter.collectors.cdn_logs import GIVE_UP_AFTER, CdnLogCollector, Source
from tests.collectors.test_cdn_logs import (  # noqa: F401 - the autouse fixture closes readers
    _close_readers,
    cdn,
    nginx_line,
    samples,
)
from tests.support.cloudfront import cf_file, cf_line

FILES = "cache_exporter_cdn_log_files_total"
ERRORS = "cache_exporter_cdn_poll_errors_total"


def files_of(reader: CdnLogCollector, outcome: str) -> float:
    return samples(reader).get((FILES, ("format", "cloudfront"), ("outcome", outcome)), 0.0)


def within(seconds: float, call: Callable[[], Any]) -> None:
    """Run ``call`` in a thread; fail if it has not returned after ``seconds``."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:  # reported below
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still blocked after {seconds}s"
    assert not failure, f"raised {failure[0]!r}"


def test_a_fifo_where_the_nginx_log_should_be_never_blocks_the_reader(tmp_path: Path) -> None:
    log_file = tmp_path / "cache.log"
    os.mkfifo(log_file)
    reader = CdnLogCollector([Source("nginx", log_file)], tmp_path / "state.json")
    within(5, reader.poll)
    assert samples(reader)[(ERRORS, ("format", "nginx"))] == 1
    # the FIFO is replaced by a real log: read from then on
    log_file.unlink()
    log_file.write_text(nginx_line("/api/a", "HIT") + "\n")
    reader.poll()
    assert cdn(reader, "hits", "api") == 1


def test_a_log_replaced_by_a_device_is_not_followed(tmp_path: Path) -> None:
    """/dev/zero at the followed path used to be read 64 MiB a poll, for ever."""
    log_file = tmp_path / "cache.log"
    log_file.write_text(nginx_line("/api/a", "HIT") + "\n")
    reader = CdnLogCollector([Source("nginx", log_file)], tmp_path / "state.json")
    reader.poll()
    log_file.unlink()
    log_file.symlink_to("/dev/zero")
    within(5, reader.poll)
    assert samples(reader)[(ERRORS, ("format", "nginx"))] == 1
    assert cdn(reader, "hits", "api") == 1


def test_a_fifo_as_state_file_never_blocks_the_start(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    os.mkfifo(state)
    made: list[CdnLogCollector] = []
    within(5, lambda: made.append(CdnLogCollector([Source("nginx", tmp_path / "x")], state)))
    assert made[0]._state.get("fresh") is True


def test_symlinks_and_special_files_in_a_cloudfront_directory_are_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An S3 sync writes regular files: a symlink (to a log elsewhere, or to a FIFO
    swapped in after the listing) is a counted, logged skip, never followed."""
    logs, elsewhere = tmp_path / "cf", tmp_path / "elsewhere"
    logs.mkdir()
    elsewhere.mkdir()
    cf_file(elsewhere / "secret.gz", [cf_line("/api/x", "Hit")] * 5)
    os.mkfifo(elsewhere / "fifo")
    (logs / "a-link.gz").symlink_to(elsewhere / "secret.gz")
    cf_file(logs / "b.gz", [cf_line("/api/b", "Miss")])
    reader = CdnLogCollector([Source("cloudfront", logs)], tmp_path / "state.json")
    # the listing saw a regular file; by the open it is a symlink to a FIFO
    cf_file(logs / "c-swapped.gz", [cf_line("/api/c", "Hit")])
    real_scandir = os.scandir

    def listing_then_swap(path: Any) -> Any:
        entries = list(real_scandir(path))
        (logs / "c-swapped.gz").unlink()
        (logs / "c-swapped.gz").symlink_to(elsewhere / "fifo")
        return iter(entries)

    monkeypatch.setattr(os, "scandir", listing_then_swap)
    within(5, reader.poll)
    assert cdn(reader, "hits", "api") == 0  # neither the symlinked log nor the FIFO
    assert cdn(reader, "misses", "api") == 1
    assert files_of(reader, "bad") == 2
    assert files_of(reader, "done") == 1


def test_one_unreadable_cloudfront_file_does_not_hold_back_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file the exporter may not read (mode 000, owned by another user) used to fail
    the whole directory on every poll, so no later file was ever read."""
    logs = tmp_path / "cf"
    logs.mkdir()
    now = [time.time()]
    reader = CdnLogCollector(
        [Source("cloudfront", logs)], tmp_path / "state.json", clock=lambda: now[0]
    )
    cf_file(logs / "a-unreadable.gz", [cf_line("/api/a", "Hit")])
    cf_file(logs / "b.gz", [cf_line("/api/b", "Hit")] * 2)
    denied = str(logs / "a-unreadable.gz")
    real_open, real_os_open = builtins.open, os.open

    def refuse(path: Any, *args: Any, **kwargs: Any) -> Any:
        if os.fsdecode(path) == denied:  # as root, mode 000 would not refuse
            raise PermissionError(13, "Permission denied")
        return real_open(path, *args, **kwargs)

    def refuse_fd(path: Any, *args: Any, **kwargs: Any) -> int:
        if os.fsdecode(path) == denied:
            raise PermissionError(13, "Permission denied")
        return real_os_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", refuse)
    monkeypatch.setattr(os, "open", refuse_fd)
    reader.poll()
    assert cdn(reader, "hits", "api") == 2  # b.gz was read
    assert files_of(reader, "bad") == 0  # a is tried again: permissions may be fixed
    now[0] += GIVE_UP_AFTER + 1
    reader.poll()
    assert files_of(reader, "bad") == 1  # and given up once it has waited long enough


def test_a_cut_short_gzip_dated_in_the_future_is_still_given_up(tmp_path: Path) -> None:
    """Giving up went by mtime alone, so a file dated in 2100 was retried for ever."""
    logs = tmp_path / "cf"
    logs.mkdir()
    whole = gzip.compress(("\n".join([cf_line("/api/a", "Hit")] * 50) + "\n").encode())
    (logs / "a.gz").write_bytes(whole[: len(whole) // 2])
    future = time.time() + 80 * 365 * 86400
    os.utime(logs / "a.gz", (future, future))
    now = [time.time()]
    reader = CdnLogCollector(
        [Source("cloudfront", logs)], tmp_path / "state.json", clock=lambda: now[0]
    )
    reader.poll()
    assert files_of(reader, "bad") == 0
    now[0] += GIVE_UP_AFTER + 1
    reader.poll()
    assert files_of(reader, "bad") == 1


def test_a_gzip_of_empty_lines_is_given_up_at_the_line_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """260 KB of gzip held 256 MiB of newlines and kept the reader busy for 9 minutes;
    past MAX_FILE_LINES a file is given up, and a poll starts no file past
    MAX_LINES_PER_POLL (the rest wait for the next poll)."""
    monkeypatch.setattr(cdn_logs, "MAX_FILE_LINES", 1000, raising=False)
    monkeypatch.setattr(cdn_logs, "MAX_LINES_PER_POLL", 1500, raising=False)
    logs = tmp_path / "cf"
    logs.mkdir()
    (logs / "a-bomb.gz").write_bytes(gzip.compress(b"\n" * 200_000))
    cf_file(logs / "b.gz", [cf_line("/api/b", "Hit")] * 600)
    cf_file(logs / "c.gz", [cf_line("/api/c", "Hit")] * 600)
    reader = CdnLogCollector([Source("cloudfront", logs)], tmp_path / "state.json")
    reader.poll()
    assert files_of(reader, "bad") == 1
    lines = samples(reader)[("cache_exporter_cdn_log_lines_total", ("format", "cloudfront"),
                             ("outcome", "ignored"))]  # fmt: skip
    assert lines < 1100  # stopped at the cap, not after 200,000 lines
    assert cdn(reader, "hits", "api") == 600  # 1000 + 600 lines: c waits for the next poll
    reader.poll()
    assert cdn(reader, "hits", "api") == 1200


@pytest.mark.parametrize(
    "saved",
    [
        pytest.param("[" * 200_000 + "]" * 200_000, id="nesting-deeper-than-the-recursion-limit"),
        pytest.param({"head": "ab", "head_len": 1 << 62, "offset": 4}, id="head-len-huge"),
        pytest.param({"head": "ab", "head_len": 4096, "offset": 4}, id="head-len-over-ours"),
        pytest.param({"offset": 1 << 80}, id="offset-past-seek"),
    ],
)
def test_a_forged_state_starts_afresh_in_bounded_memory(tmp_path: Path, saved: Any) -> None:
    log_file = tmp_path / "cache.log"
    log_file.write_text(nginx_line("/api/a", "HIT") + "\n")
    state = tmp_path / "state.json"
    if isinstance(saved, str):
        state.write_text(saved)
    else:
        st = log_file.stat()
        own = {"dev": st.st_dev, "ino": st.st_ino, **saved}
        state.write_text(json.dumps({"version": 1, "sources": {f"nginx:{log_file}": own}}))
    tracemalloc.start()
    try:
        reader = CdnLogCollector([Source("nginx", log_file)], state)
        reader.poll()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024 * 1024
    assert cdn(reader, "hits", "api") == 0  # what was there counts as read
    with open(log_file, "a") as out:
        out.write(nginx_line("/api/a", "HIT") + "\n")
    reader.poll()
    assert cdn(reader, "hits", "api") == 1


def test_a_symlink_planted_at_the_state_temp_name_is_not_written_through(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state.json"
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    (tmp_path / f".state.json.{os.getpid()}.tmp").symlink_to(victim)
    log_file = tmp_path / "cache.log"
    log_file.write_text(nginx_line("/api/a", "HIT") + "\n")
    reader = CdnLogCollector([Source("nginx", log_file)], state)
    reader.poll()
    assert victim.read_text() == "keep me"
    assert json.loads(state.read_text())["version"] == 1


def test_a_state_that_cannot_be_written_is_named_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    log_file = tmp_path / "cache.log"
    log_file.write_text(nginx_line("/api/a", "HIT") + "\n")
    state = tmp_path / "state.json"
    reader = CdnLogCollector([Source("nginx", log_file)], state)

    def refuse(*args: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    with caplog.at_level(logging.WARNING), pytest.raises(OSError):
        reader.poll()
    lines = [r.getMessage() for r in caplog.records]
    assert any(str(state) in line and "Permission denied" in line for line in lines), lines


def test_file_names_are_logged_escaped_on_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A file name is outside data: a newline in it forged a second log line, an escape
    sequence reached the terminal, an undecodable byte reached the handler's encoder."""
    logs = tmp_path / "cf"
    logs.mkdir()
    reader = CdnLogCollector([Source("cloudfront", logs)], tmp_path / "state.json")
    reader.poll()
    name = b"E1.\xff\n2026-11-29 ERROR forged line \x1b[31m.gz"
    with open(os.path.join(os.fsencode(logs), name), "wb") as out:
        out.write(b"\x1f\x8b" + b"\x08\x00" + os.urandom(64))  # corrupt gzip: logged
    with caplog.at_level(logging.WARNING):
        reader.poll()
    assert files_of(reader, "bad") == 1
    messages = [r.getMessage() for r in caplog.records if "forged" in r.getMessage()]
    assert messages, [r.getMessage() for r in caplog.records]
    for message in messages:
        assert message.isprintable() and message.isascii(), repr(message)


def test_a_source_that_keeps_failing_is_logged_once_a_streak(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every poll counts as a success of the reader, which ended the streak: a FIFO in
    place of the log said so at WARNING every poll (the handler's rate limit aside)."""
    log_file = tmp_path / "cache.log"
    os.mkfifo(log_file)
    reader = CdnLogCollector([Source("nginx", log_file)], tmp_path / "state.json")
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            reader.poll()
            reader._succeeded()
    warned = [r for r in caplog.records if "cannot read" in r.getMessage()]
    assert len(warned) == 1, [r.getMessage() for r in warned]
    assert samples(reader)[(ERRORS, ("format", "nginx"))] == 3


def test_a_source_named_another_way_after_a_restart_keeps_its_position(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The state is keyed by the path as written: the same directory given relative,
    then absolute (or through a symlink) read every file again, counting each twice."""
    logs = tmp_path / "cf"
    logs.mkdir()
    (tmp_path / "link").symlink_to(logs)
    state = tmp_path / "state.json"
    cf_file(logs / "a.gz", [cf_line("/api/a", "Hit")] * 3)
    monkeypatch.chdir(tmp_path)
    first = CdnLogCollector([Source("cloudfront", Path("cf"))], state)
    first.poll()
    assert cdn(first, "hits", "api") == 3
    for spelling in (logs, tmp_path / "link"):
        cf_file(logs / f"b-{spelling.name}.gz", [cf_line("/api/b", "Hit")])
        again = CdnLogCollector([Source("cloudfront", spelling)], state)
        again.poll()
        assert cdn(again, "hits", "api") == 1  # only the new file


def test_a_state_naming_more_files_than_ever_kept_is_refused_before_parsing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """32 MiB of state (3 M names, ours never holds over MAX_REMEMBERED a source) took
    500 MiB and 10 s to load at every start."""
    monkeypatch.setattr(cdn_logs, "MAX_REMEMBERED", 100)
    logs = tmp_path / "cf"
    logs.mkdir()
    cf_file(logs / "a.gz", [cf_line("/api/a", "Hit")])
    done = {f"forged-{i}": 1 for i in range(5000)}
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"version": 1, "sources": {f"cloudfront:{logs}": {"done": done}}}))
    reader = CdnLogCollector([Source("cloudfront", logs)], state)
    assert reader._state.get("fresh") is True
    reader.poll()
    assert cdn(reader, "hits", "api") == 0  # afresh: what is there counts as read


def test_files_that_cannot_be_opened_take_no_turn_from_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A poll reads at most MAX_FILES_PER_POLL files; unreadable ones (retried for 10
    minutes) used to fill those turns, so no file behind them was read meanwhile."""
    monkeypatch.setattr(cdn_logs, "MAX_FILES_PER_POLL", 3)
    logs = tmp_path / "cf"
    logs.mkdir()
    reader = CdnLogCollector([Source("cloudfront", logs)], tmp_path / "state.json")
    for i in range(5):
        cf_file(logs / f"a-{i}.gz", [cf_line("/api/a", "Hit")])
    cf_file(logs / "b.gz", [cf_line("/api/b", "Miss")])
    real_os_open = os.open

    def refuse_fd(path: Any, *args: Any, **kwargs: Any) -> int:
        if os.path.basename(os.fsdecode(path)).startswith("a-"):
            raise PermissionError(13, "Permission denied")
        return real_os_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse_fd)
    reader.poll()
    assert cdn(reader, "misses", "api") == 1
