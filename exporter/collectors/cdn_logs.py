"""The CDN layer, read from the edge's access logs.

Two sources, each a :class:`Source`:

- ``cloudfront:DIR``: CloudFront standard logs (W3C, tab-separated, a ``#Fields:``
  header naming the columns, usually gzip) as delivered into a directory (an S3
  sync).  Every file is read once, whole, in name order; a file still being
  written (gzip cut short) is tried again on the next poll, and given up on
  (``outcome="bad"``) after :data:`GIVE_UP_AFTER` seconds.
  ``x-edge-result-type`` ``Hit`` and ``RefreshHit`` count as hits, ``Miss`` as
  a miss; ``LimitExceeded``, ``CapacityExceeded``, ``Error`` and ``Redirect``
  are no cache lookup and only counted as ``ignored`` lines.
- ``nginx:FILE``: an nginx ``proxy_cache`` access log, followed like ``tail -F``,
  written with this format (tab-separated ``key=value`` pairs; more pairs, in
  any order, are ignored)::

      log_format cache_slo 'time=$time_iso8601\\tmethod=$request_method\\t'
                           'uri=$uri\\tstatus=$status\\tcache=$upstream_cache_status';
      access_log /var/log/nginx/cache.log cache_slo;

  ``$upstream_cache_status`` ``HIT``, ``STALE``, ``UPDATING`` and ``REVALIDATED``
  are served from the cache (hits); ``MISS``, ``EXPIRED`` and ``BYPASS`` went
  to the origin (misses, as CloudFront counts an uncacheable request); ``-``
  (no cache on that location) is ignored.  ``$uri`` is the path without the
  query string, so no token in a query ever reaches this reader.

The path (``cs-uri-stem`` / ``uri``) is classified by :mod:`exporter.paths`, so
``type`` is one of the configured path classes or ``other``: the label set is
bounded by that file, never by the log.

Positions survive restarts: after each poll the reader writes a small JSON state
file (temp file, fsync, rename) with the CloudFront files already read and the
nginx file's device, inode, offset and a hash of its first bytes.  The state is
written *before* the poll's counts are published, so a crash between the two
loses that poll's counts instead of counting its lines twice after the restart.
Rotation: a renamed nginx log (new inode at the path) is drained from the held
handle before the new file is opened, also across a restart when the old file
is ``FILE.1``; a truncated or replaced one (smaller, or different first bytes) is
read from the start.  A partial last line waits for its newline; a line over
:data:`MAX_LINE` bytes is skipped to its newline (``oversized``), so memory stays
bounded whatever the file holds.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, cast
from urllib.parse import unquote

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from exporter import metrics
from exporter.collectors._redis import BackgroundThread
from exporter.collectors.health import CollectorHealth, RepeatFilter
from exporter.paths import PathClasses

log = logging.getLogger(__name__)

Format = Literal["cloudfront", "nginx"]
Outcome = Literal["hit", "miss", "ignored", "malformed", "oversized"]

#: longest line kept; CloudFront logs no URL over 8192 bytes, a line is far shorter
MAX_LINE = 32 * 1024
CHUNK = 64 * 1024
#: bytes one poll reads from one nginx log (the rest waits for the next poll)
MAX_BYTES_PER_POLL = 64 * 1024 * 1024
#: CloudFront files read per poll, and the most a file may hold uncompressed
MAX_FILES_PER_POLL = 200
MAX_FILE_BYTES = 1024 * 1024 * 1024
#: seconds after its last change that a cut-short gzip file is given up on
GIVE_UP_AFTER = 600.0
#: CloudFront file names remembered in the state (those still in the directory)
MAX_REMEMBERED = 100_000
#: bytes of a file's start whose hash tells a truncated-and-rewritten log apart
HEAD_BYTES = 256
STATE_VERSION = 1
#: the state holds at most MAX_REMEMBERED names: a larger file is not ours
MAX_STATE_BYTES = 32 * 1024 * 1024

#: CloudFront's columns when a file has no #Fields line (AWS' documented order)
CLOUDFRONT_FIELDS: tuple[str, ...] = (
    "date",
    "time",
    "x-edge-location",
    "sc-bytes",
    "c-ip",
    "cs-method",
    "cs(Host)",
    "cs-uri-stem",
    "sc-status",
    "cs(Referer)",
    "cs(User-Agent)",
    "cs-uri-query",
    "cs(Cookie)",
    "x-edge-result-type",
    "x-edge-request-id",
    "x-host-header",
    "cs-protocol",
    "cs-bytes",
    "time-taken",
    "x-forwarded-for",
    "ssl-protocol",
    "ssl-cipher",
    "x-edge-response-result-type",
    "cs-protocol-version",
    "fle-status",
    "fle-encrypted-fields",
    "c-port",
    "time-to-first-byte",
    "x-edge-detailed-result-type",
    "sc-content-type",
    "sc-content-len",
    "sc-range-start",
    "sc-range-end",
)
CLOUDFRONT_RESULTS: dict[bytes, Outcome] = {
    b"Hit": "hit",
    b"RefreshHit": "hit",
    b"Miss": "miss",
    b"LimitExceeded": "ignored",
    b"CapacityExceeded": "ignored",
    b"Error": "ignored",
    b"Redirect": "ignored",
}
NGINX_RESULTS: dict[bytes, Outcome] = {
    b"HIT": "hit",
    b"STALE": "hit",
    b"UPDATING": "hit",
    b"REVALIDATED": "hit",
    b"MISS": "miss",
    b"EXPIRED": "miss",
    b"BYPASS": "miss",
    b"-": "ignored",
}


class CdnLogError(ValueError):
    """A bad ``--cdn-log`` value: names it and what was expected."""


@dataclass(frozen=True)
class Source:
    """One log source: its format and the directory (CloudFront) or file (nginx)."""

    format: Format
    path: Path

    @property
    def key(self) -> str:
        return f"{self.format}:{self.path}"

    @classmethod
    def parse(cls, text: str) -> Source:
        kind, sep, where = text.partition(":")
        if not sep or kind not in metrics.CDN_FORMATS or not where:
            raise CdnLogError("cloudfront:DIRECTORY or nginx:FILE")
        return cls(cast(Format, kind), Path(where))


# --- lines ---------------------------------------------------------------------------


class LineReader:
    """Complete lines from a byte stream in bounded memory.

    ``consumed`` is the stream position after the last complete line handed out,
    so a partial last line is read again next time; a line longer than ``max_line``
    is handed out as ``None`` and its bytes dropped as they come (``skipping``
    carries that over to the next read of a followed file)."""

    def __init__(self, read: Callable[[int], bytes], *, skipping: bool = False) -> None:
        self._read = read
        self.consumed = 0
        self.skipping = skipping
        self.tail = b""

    def lines(
        self, max_bytes: int | None = None, max_line: int = MAX_LINE
    ) -> Iterator[bytes | None]:
        buf = b""
        read_total = 0
        while max_bytes is None or read_total < max_bytes:
            data = self._read(CHUNK)
            if not data:
                break
            read_total += len(data)
            buf += data
            start = 0
            while (newline := buf.find(b"\n", start)) >= 0:
                line = buf[start:newline]
                self.consumed += newline + 1 - start
                start = newline + 1
                if self.skipping or len(line) > max_line:
                    self.skipping = False
                    yield None
                else:
                    yield line
            buf = buf[start:]
            if len(buf) > max_line:  # a line too long to keep: drop what came of it
                if not self.skipping:
                    self.skipping = True
                self.consumed += len(buf)
                buf = b""
        self.tail = buf


def _nginx_line(line: bytes) -> tuple[Outcome, str | None]:
    cache = uri = None
    for pair in line.rstrip(b"\r").split(b"\t"):
        key, sep, value = pair.partition(b"=")
        if not sep:
            continue
        if key == b"cache":
            cache = value
        elif key == b"uri":
            uri = value
    if cache is None or uri is None or not uri.startswith(b"/"):
        return "malformed", None
    outcome = NGINX_RESULTS.get(cache)
    if outcome is None:
        return "malformed", None
    return outcome, uri.decode("utf-8", "replace")


class _CloudFrontColumns:
    """Where the needed columns are, from the file's ``#Fields:`` line."""

    def __init__(self) -> None:
        self.use(list(CLOUDFRONT_FIELDS))

    def use(self, names: list[str]) -> bool:
        if "cs-uri-stem" not in names or "x-edge-result-type" not in names:
            self.count = -1  # the lines below it cannot be read: each is malformed
            return False
        self.count = len(names)
        self.stem = names.index("cs-uri-stem")
        self.result = names.index("x-edge-result-type")
        return True

    def line(self, line: bytes) -> tuple[Outcome, str | None]:
        line = line.rstrip(b"\r")
        if line.startswith(b"#"):
            if line.startswith(b"#Fields:"):
                names = line[len(b"#Fields:") :].decode("ascii", "replace").split()
                if not self.use(names):
                    return "malformed", None
            return "ignored", None
        if not line.strip():
            return "ignored", None
        values = line.split(b"\t")
        if len(values) != self.count:
            return "malformed", None
        outcome = CLOUDFRONT_RESULTS.get(values[self.result])
        stem = values[self.stem]
        if outcome is None or not stem.startswith(b"/"):
            return "malformed", None
        return outcome, unquote(stem.decode("utf-8", "replace"))


# --- the collector --------------------------------------------------------------------


@dataclass
class _Tally:
    """Counts of one poll, published only after the state is written."""

    cdn: Counter[tuple[str, str]] = field(default_factory=Counter)  # (hit|miss, type)
    lines: Counter[tuple[str, str]] = field(default_factory=Counter)  # (format, outcome)
    files: Counter[tuple[str, str]] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    def add(self, other: _Tally) -> None:
        self.cdn.update(other.cdn)
        self.lines.update(other.lines)
        self.files.update(other.files)
        self.errors.update(other.errors)


def _valid_own(own: Any) -> bool:
    """Whether one source's saved state has the shape this reader writes."""
    if not isinstance(own, dict):
        return False
    ints = ("dev", "ino", "offset", "head_len")
    if any(k in own and (type(own[k]) is not int or own[k] < 0) for k in ints):
        return False
    if not isinstance(own.get("skipping", False), bool):
        return False
    if not isinstance(own.get("head", ""), str):
        return False
    if not isinstance(own.get("read_through", ""), str):
        return False
    return isinstance(own.get("done", {}), dict)


def _copy(own: dict[str, Any]) -> dict[str, Any]:
    """A source's state, copied one level deep (its ``done`` names are a flat dict)."""
    return {key: dict(value) if isinstance(value, dict) else value for key, value in own.items()}


class CdnLogCollector(BackgroundThread, Collector):
    """``cache_{hits,misses}_total{layer="cdn"}`` from CDN logs, polled every
    ``interval`` seconds by a supervised thread (or by calling :meth:`poll`)."""

    label = "CDN log reader"
    failure = "poll failed"

    def __init__(
        self,
        sources: Iterable[Source],
        state_file: Path,
        classes: PathClasses | None = None,
        *,
        instance: str = "",
        interval: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sources = list(sources)
        self.state_file = Path(state_file)
        self.classes = classes or PathClasses()
        self.instance = instance
        self.interval = interval
        self._clock = clock
        self.health = CollectorHealth(metrics.COLLECTOR_CDN_LOGS, instance)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._repeats = RepeatFilter()
        self._lock = threading.Lock()  # counters (scrape) and polls (thread or test)
        self._poll_lock = threading.Lock()
        self._counts = _Tally()
        for type_ in self.classes.types:
            for kind in ("hit", "miss"):
                self._counts.cdn[(kind, type_)] = 0
        for source in self.sources:
            for outcome in metrics.CDN_LINE_OUTCOMES:
                self._counts.lines[(source.format, outcome)] = 0
        self._saved: str | None = None
        self._state = self._load_state()
        self._held: dict[str, IO[bytes]] = {}  # nginx: the open handle being followed

    # --- state -----------------------------------------------------------------------

    def _load_state(self) -> dict[str, Any]:
        try:
            with open(self.state_file, "rb") as handle:
                raw = handle.read(MAX_STATE_BYTES + 1)
            if len(raw) > MAX_STATE_BYTES:
                raise ValueError("state file too large")
            data = json.loads(raw)
        except FileNotFoundError:
            return {"version": STATE_VERSION, "sources": {}}
        except (OSError, ValueError) as exc:
            log.warning(
                "CDN log state %s unreadable (%s): starting from the logs' current ends",
                self.state_file,
                type(exc).__name__,
            )
            return {"version": STATE_VERSION, "sources": {}, "fresh": True}
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            log.warning("CDN log state %s: not version %d, ignored", self.state_file, STATE_VERSION)
            return {"version": STATE_VERSION, "sources": {}, "fresh": True}
        sources = data.get("sources")
        if not isinstance(sources, dict) or not all(map(_valid_own, sources.values())):
            log.warning("CDN log state %s: malformed, starting from the logs' current ends",
                        self.state_file)  # fmt: skip
            return {"version": STATE_VERSION, "sources": {}, "fresh": True}
        return data

    def _save_state(self) -> None:
        kept = {key: value for key, value in self._state.items() if key != "fresh"}
        text = json.dumps(kept, separators=(",", ":"))
        if text == self._saved:  # nothing moved: no write, no fsync
            return
        tmp = self.state_file.with_name(f".{self.state_file.name}.{os.getpid()}.tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.state_file)
        self._saved = text
        self._state.pop("fresh", None)  # positions are ours from now on

    # --- polling -----------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.poll()
            self._succeeded()
            self._stop.wait(self.interval)

    def close(self) -> None:
        """Close the followed files (``stop`` does it too)."""
        self._disconnect()

    def _disconnect(self) -> None:
        for handle in self._held.values():
            handle.close()
        self._held.clear()

    def poll(self) -> None:
        """Read what is new in every source, write the state, then publish the counts.

        A source that fails mid-read keeps its previous position and its lines of
        this poll are dropped; a state that cannot be written rolls every position
        back and publishes nothing: a line is never counted twice, at worst read
        again on the next poll."""
        with self._poll_lock:
            sources: dict[str, Any] = self._state["sources"]
            snapshot = {key: _copy(own) for key, own in sources.items()}
            tally = _Tally()
            for source in self.sources:
                own = sources.setdefault(source.key, {})
                local = _Tally()
                try:
                    if source.format == "cloudfront":
                        self._poll_directory(source, own, local)
                    else:
                        self._poll_file(source, own, local)
                except OSError as exc:
                    sources[source.key] = _copy(snapshot.get(source.key, {}))
                    self._drop(source.key)
                    tally.errors[source.format] += 1
                    level = self._repeats.level(f"{source.key}:{type(exc).__name__}")
                    log.log(level, "CDN log %s: cannot read (%s)", source.key, exc.strerror)
                    continue
                tally.add(local)
            try:
                self._save_state()
            except OSError:
                self._state["sources"] = snapshot
                self._disconnect()  # reopened at the restored positions next time
                raise
            with self._lock:
                self._counts.add(tally)

    def _drop(self, key: str) -> None:
        handle = self._held.pop(key, None)
        if handle is not None:
            handle.close()

    def _count(self, fmt: str, outcome: Outcome, path: str | None, tally: _Tally) -> None:
        tally.lines[(fmt, outcome)] += 1
        if path is not None and outcome in ("hit", "miss"):
            tally.cdn[(outcome, self.classes.classify(path))] += 1

    # CloudFront: a directory of files, each read once, whole

    def _poll_directory(self, source: Source, own: dict[str, Any], tally: _Tally) -> None:
        done: dict[str, Any] = own.setdefault("done", {})
        names = sorted(
            e.name for e in os.scandir(source.path) if e.is_file() and not e.name.startswith(".")
        )
        present = set(names)
        for gone in [n for n in done if n not in present]:
            del done[gone]
        if self._state.get("fresh"):  # no trustworthy state: take what is there as read
            for name in names[-MAX_REMEMBERED:]:
                done[name] = 1
            return
        read = 0
        for name in names:
            if name in done or name <= own.get("read_through", "") or read >= MAX_FILES_PER_POLL:
                continue
            if self._stop.is_set():  # shutting down: the rest waits for the next start
                break
            if len(done) >= MAX_REMEMBERED:
                # a directory that keeps every log (an S3 sync) outgrows the names kept:
                # forget the oldest half behind a watermark (CloudFront names sort by
                # time), so reading goes on and nothing below it is read twice
                forget = sorted(done)[: MAX_REMEMBERED // 2]
                for old in forget:
                    del done[old]
                own["read_through"] = max(own.get("read_through", ""), forget[-1])
            read += 1
            outcome = self._read_cloudfront_file(source.path / name, tally)
            if outcome is not None:
                done[name] = 1
                tally.files[("cloudfront", outcome)] += 1

    def _read_cloudfront_file(self, path: Path, tally: _Tally) -> str | None:
        """``done`` or ``bad``; ``None`` for a file still being written (try later)."""
        local = _Tally()
        columns = _CloudFrontColumns()
        try:
            with open(path, "rb") as raw:
                gz = raw.read(2) == b"\x1f\x8b"
                raw.seek(0)
                stream: IO[bytes] = gzip.GzipFile(fileobj=raw) if gz else raw  # type: ignore[assignment]
                reader = LineReader(stream.read)
                for line in reader.lines(max_bytes=MAX_FILE_BYTES):
                    if line is None:
                        self._count("cloudfront", "oversized", None, local)
                    else:
                        outcome, stem = columns.line(line)
                        self._count("cloudfront", outcome, stem, local)
                if reader.consumed + len(reader.tail) >= MAX_FILE_BYTES:
                    raise _TooLarge
                if reader.tail:  # a complete file's last line without a newline
                    outcome, stem = columns.line(reader.tail)
                    self._count("cloudfront", outcome, stem, local)
        except EOFError:  # gzip cut short: still being written, or never finished
            age = self._clock() - path.stat().st_mtime
            if age < GIVE_UP_AFTER:
                return None
            log.warning("CDN log %s: gzip cut short and unchanged for %ds, skipped", path, age)
            return "bad"
        except (_TooLarge, gzip.BadGzipFile, zlib.error):
            log.warning(
                "CDN log %s: not a readable log (corrupt gzip or over %d bytes), skipped",
                path,
                MAX_FILE_BYTES,
            )
            return "bad"
        tally.add(local)
        return "done"

    # nginx: one file, followed across rotation

    def _poll_file(self, source: Source, own: dict[str, Any], tally: _Tally) -> None:
        key = source.key
        held = self._held.get(key)
        if held is None:
            held = self._open_at_start(source, own, tally)
            if held is None:
                return
        self._drain(held, own, tally, MAX_BYTES_PER_POLL)
        try:
            now = os.stat(source.path)
        except FileNotFoundError:
            return  # rotated away and not yet recreated: keep the held file
        held_stat = os.fstat(held.fileno())
        if (now.st_dev, now.st_ino) != (held_stat.st_dev, held_stat.st_ino):
            # renamed: what was written to the old file before the switch is read now
            self._drain(held, own, tally, None, final=True)  # it will not grow: to its end
            held.close()
            fresh = open(source.path, "rb")  # noqa: SIM115 - held across polls
            self._held[key] = fresh
            self._remember(fresh, own, 0)
            self._drain(fresh, own, tally, MAX_BYTES_PER_POLL)
        elif now.st_size < own.get("offset", 0) or not self._same_head(held, own):
            held.seek(0)  # truncated (copytruncate) or rewritten in place
            self._remember(held, own, 0)
            self._drain(held, own, tally, MAX_BYTES_PER_POLL)

    def _open_at_start(
        self, source: Source, own: dict[str, Any], tally: _Tally
    ) -> IO[bytes] | None:
        try:
            handle = open(source.path, "rb")  # noqa: SIM115 - held across polls
        except FileNotFoundError:
            return None
        stat = os.fstat(handle.fileno())
        if self._state.get("fresh"):  # no trustworthy state: what is there counts as read
            handle.seek(0, os.SEEK_END)
            self._remember(handle, own, handle.tell())
        elif own.get("ino") == stat.st_ino and own.get("dev") == stat.st_dev:
            if stat.st_size >= own.get("offset", 0) and self._same_head(handle, own):
                handle.seek(own.get("offset", 0))
            else:
                self._remember(handle, own, 0)
        elif own.get("ino") is not None:
            # rotated while we were down: finish the old file if it is FILE.1
            old = source.path.with_name(source.path.name + ".1")
            try:
                with open(old, "rb") as previous:
                    was = os.fstat(previous.fileno())
                    if (was.st_dev, was.st_ino) == (own.get("dev"), own.get("ino")):
                        previous.seek(own.get("offset", 0))
                        self._drain(previous, dict(own), tally, None, final=True)
            except FileNotFoundError:
                pass
            self._remember(handle, own, 0)
        else:
            self._remember(handle, own, 0)
        self._held[source.key] = handle
        return handle

    def _remember(self, handle: IO[bytes], own: dict[str, Any], offset: int) -> None:
        stat = os.fstat(handle.fileno())
        own.clear()
        own.update(dev=stat.st_dev, ino=stat.st_ino, offset=offset, skipping=False, head="")

    def _same_head(self, handle: IO[bytes], own: dict[str, Any]) -> bool:
        head = own.get("head", "")
        if not head:
            return True
        position = handle.tell()
        try:
            handle.seek(0)
            now = handle.read(own.get("head_len", HEAD_BYTES))
        finally:
            handle.seek(position)
        return bool(hashlib.sha256(now).hexdigest() == head)

    def _drain(
        self,
        handle: IO[bytes],
        own: dict[str, Any],
        tally: _Tally,
        max_bytes: int | None,
        final: bool = False,
    ) -> None:
        """Count the complete lines from the saved offset (at most ``max_bytes``); with
        ``final`` (a rotated file, read to its end) the last line counts even without
        its newline."""
        offset = own.get("offset", 0)
        handle.seek(offset)
        reader = LineReader(handle.read, skipping=bool(own.get("skipping")))
        for line in reader.lines(max_bytes=max_bytes):
            if line is None:
                self._count("nginx", "oversized", None, tally)
            else:
                outcome, uri = _nginx_line(line)
                self._count("nginx", outcome, uri, tally)
        if final and reader.tail:  # the old file will not grow: its last line counts
            outcome, uri = _nginx_line(reader.tail)
            self._count("nginx", outcome, uri, tally)
            reader.consumed += len(reader.tail)
        own["offset"] = offset + reader.consumed
        own["skipping"] = reader.skipping
        if not own.get("head") and own["offset"] > 0:
            handle.seek(0)
            first = handle.read(min(HEAD_BYTES, own["offset"]))
            own["head"] = hashlib.sha256(first).hexdigest()
            own["head_len"] = len(first)
        handle.seek(own["offset"])

    # --- exposition ------------------------------------------------------------------

    def describe(self) -> Iterator[Metric]:
        for spec in (
            metrics.CACHE_HITS,
            metrics.CACHE_MISSES,
            metrics.CDN_LINES,
            metrics.CDN_FILES,
            metrics.CDN_POLL_ERRORS,
        ):
            yield spec.new_family()

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            counts = _Tally(
                Counter(self._counts.cdn),
                Counter(self._counts.lines),
                Counter(self._counts.files),
                Counter(self._counts.errors),
            )
        hits, misses = metrics.CACHE_HITS.new_family(), metrics.CACHE_MISSES.new_family()
        for (kind, type_), value in sorted(counts.cdn.items()):
            family = hits if kind == "hit" else misses
            family.add_metric([metrics.LAYER_CDN, type_], value)
        lines = metrics.CDN_LINES.new_family()
        for (fmt, outcome), value in sorted(counts.lines.items()):
            lines.add_metric([fmt, outcome], value)
        files = metrics.CDN_FILES.new_family()
        for (fmt, outcome), value in sorted(counts.files.items()):
            files.add_metric([fmt, outcome], value)
        errors = metrics.CDN_POLL_ERRORS.new_family()
        for fmt in sorted({source.format for source in self.sources}):
            errors.add_metric([fmt], counts.errors.get(fmt, 0))
        yield from (hits, misses, lines, files, errors)


class _TooLarge(Exception):
    pass
