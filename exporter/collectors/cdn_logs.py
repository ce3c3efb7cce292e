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

Hostile files: only regular files are read (:func:`open_regular`: a FIFO at a path
no longer blocks the open, a device is not read for ever; a symlink in a CloudFront
directory is not followed), a file that cannot be read yet does not hold back the
others, and a file or a poll past :data:`MAX_FILE_LINES` / :data:`MAX_LINES_PER_POLL`
lines stops there, so a poll takes bounded time whatever the directory holds.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import json
import logging
import os
import stat
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
#: lines read from one CloudFront file: a real line is over 256 bytes, so every file
#: under MAX_FILE_BYTES fits; a gzip of empty lines (a few KiB holding 256 MiB of
#: newlines took 9 minutes) is given up on instead of holding the reader
MAX_FILE_LINES = MAX_FILE_BYTES // 256
#: lines one poll reads: no new CloudFront file is started past it, an nginx log waits
MAX_LINES_PER_POLL = MAX_FILE_LINES
#: lines between two looks at the stop flag inside a file
STOP_CHECK_LINES = 1 << 16
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


class NotRegularFile(OSError):
    """A path that is a FIFO, a device, a directory or (where refused) a symlink: its
    reads could block for ever or never end, so it is never read."""


def open_regular(path: Path | str, *, follow: bool = True) -> IO[bytes]:
    """``open(path, "rb")`` for regular files only, without ever blocking on the open.

    ``O_NONBLOCK`` makes opening a FIFO return at once (a plain ``open`` waits for a
    writer for ever), ``fstat`` then judges what was opened, not what the name pointed
    at a moment before; ``follow=False`` refuses a symlink (``O_NOFOLLOW``)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if not follow and exc.errno == errno.ELOOP:
            raise NotRegularFile(errno.ELOOP, "a symlink, not a regular file") from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegularFile(errno.EINVAL, "not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def shown(path: Path | str) -> str:
    """A path as a log line shows it: quoted, with newlines, control characters and
    undecodable bytes escaped (a file name is outside data: ``\n`` in one would
    forge a log line, an escape sequence would repaint the terminal)."""
    return ascii(str(path))


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
        #: whether the last ``lines`` stopped at ``max_lines`` (more lines may follow)
        self.limited = False

    def lines(
        self,
        max_bytes: int | None = None,
        max_line: int = MAX_LINE,
        max_lines: int | None = None,
    ) -> Iterator[bytes | None]:
        """Lines until the stream ends, ``max_bytes`` were read or ``max_lines`` were
        handed out (``consumed`` then stops after the last line handed out)."""
        buf = b""
        read_total = 0
        handed = 0
        while max_bytes is None or read_total < max_bytes:
            data = self._read(CHUNK)
            if not data:
                break
            read_total += len(data)
            buf += data
            start = 0
            while (newline := buf.find(b"\n", start)) >= 0:
                if max_lines is not None and handed >= max_lines:
                    self.limited = True
                    self.tail = b""
                    return
                handed += 1
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
    # bounded as the reader writes them: a forged offset past 2**63 made seek() raise
    # OverflowError, a forged head_len made one read() take the whole log into memory
    bounds = {"dev": 1 << 64, "ino": 1 << 64, "offset": 1 << 62, "head_len": HEAD_BYTES + 1}
    if any(
        key in own and (type(own[key]) is not int or not 0 <= own[key] < most)
        for key, most in bounds.items()
    ):
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
        #: sources failing now -> why (one WARNING a streak, not one a poll)
        self._failing: dict[str, str] = {}
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
        self._adopt_respelled()
        self._held: dict[str, IO[bytes]] = {}  # nginx: the open handle being followed
        #: CloudFront files not readable yet: (source, name) -> ((size, mtime), first seen)
        self._pending: dict[tuple[str, str], tuple[tuple[int, int], float]] = {}

    # --- state -----------------------------------------------------------------------

    def _load_state(self) -> dict[str, Any]:
        try:
            with open_regular(self.state_file) as handle:  # a FIFO here blocked serve's start
                raw = handle.read(MAX_STATE_BYTES + 1)
            if len(raw) > MAX_STATE_BYTES:
                raise ValueError("state file too large")
            # each name is a '":' in the text: more than the reader ever keeps means the
            # file is not ours, refused before parsing (3 M names took 500 MiB and 10 s)
            if raw.count(b'":') > (len(self.sources) + 2) * (MAX_REMEMBERED + 16):
                raise ValueError("state file names more files than the reader keeps")
            data = json.loads(raw)
        except FileNotFoundError:
            return {"version": STATE_VERSION, "sources": {}}
        except (OSError, ValueError, RecursionError) as exc:  # deep nesting: RecursionError
            log.warning(
                "CDN log state %s unreadable (%s): starting from the logs' current ends",
                shown(self.state_file),
                type(exc).__name__,
            )
            return {"version": STATE_VERSION, "sources": {}, "fresh": True}
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            log.warning(
                "CDN log state %s: not version %d, ignored", shown(self.state_file), STATE_VERSION
            )
            return {"version": STATE_VERSION, "sources": {}, "fresh": True}
        sources = data.get("sources")
        if not isinstance(sources, dict) or not all(map(_valid_own, sources.values())):
            log.warning("CDN log state %s: malformed, starting from the logs' current ends",
                        shown(self.state_file))  # fmt: skip
            return {"version": STATE_VERSION, "sources": {}, "fresh": True}
        return data

    def _adopt_respelled(self) -> None:
        """Take over the saved position of a source now named another way (relative
        then absolute, through a symlink): the state is keyed by the path as written,
        and a source without a saved position reads every file of its directory again,
        which counted each line a second time."""
        saved: dict[str, Any] = self._state["sources"]
        ours = {source.key for source in self.sources}
        for source in self.sources:
            if source.key in saved:
                continue
            mine = os.path.realpath(source.path)
            for key in [k for k in saved if k not in ours]:
                fmt, _, where = key.partition(":")
                if fmt == source.format and os.path.realpath(where) == mine:
                    saved[source.key] = saved.pop(key)
                    break

    def _save_state(self) -> None:
        kept = {key: value for key, value in self._state.items() if key != "fresh"}
        text = json.dumps(kept, separators=(",", ":"))
        if text == self._saved:  # nothing moved: no write, no fsync
            return
        tmp = self.state_file.with_name(f".{self.state_file.name}.{os.getpid()}.tmp")
        # a fresh file of our own: whatever sits at the temp name (a crashed run's file,
        # or a symlink planted in a shared directory) is removed, never written through
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        with os.fdopen(os.open(tmp, flags, 0o644), "w", encoding="utf-8") as handle:
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
                    # WARNING when a source starts failing (or fails otherwise), DEBUG
                    # while it fails alike: each poll "succeeds", which ended the streak
                    why = exc.strerror or type(exc).__name__
                    same = self._failing.get(source.key) == why
                    self._failing[source.key] = why
                    log.log(logging.DEBUG if same else logging.WARNING,
                            "CDN log %s: cannot read (%s)", shown(source.key), why)  # fmt: skip
                    continue
                if self._failing.pop(source.key, None) is not None:
                    log.warning("CDN log %s: readable again", shown(source.key))
                tally.add(local)
            try:
                self._save_state()
            except OSError as exc:
                self._state["sources"] = snapshot
                self._disconnect()  # reopened at the restored positions next time
                log.log(
                    self._repeats.level(f"state:{type(exc).__name__}"),
                    "CDN log state %s cannot be written (%s): nothing is counted until it can",
                    shown(self.state_file),
                    exc.strerror or type(exc).__name__,
                )
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
        for pending in [p for p in self._pending if p[0] == source.key and p[1] not in present]:
            del self._pending[pending]
        if self._state.get("fresh"):  # no trustworthy state: take what is there as read
            for name in names[-MAX_REMEMBERED:]:
                done[name] = 1
            return
        read = 0
        budget = MAX_LINES_PER_POLL
        for name in names:
            if name in done or name <= own.get("read_through", "") or read >= MAX_FILES_PER_POLL:
                continue
            if self._stop.is_set() or budget <= 0:  # the rest waits for the next poll
                break
            if len(done) >= MAX_REMEMBERED:
                # a directory that keeps every log (an S3 sync) outgrows the names kept:
                # forget the oldest half behind a watermark (CloudFront names sort by
                # time), so reading goes on and nothing below it is read twice
                forget = sorted(done)[: MAX_REMEMBERED // 2]
                for old in forget:
                    del done[old]
                own["read_through"] = max(own.get("read_through", ""), forget[-1])
            outcome, lines = self._read_cloudfront_file(source, name, tally)
            budget -= lines
            # a file that could not even be opened costs nothing: it takes no turn from
            # the files behind it (200 unreadable ones held every other back 10 minutes)
            read += 1 if outcome is not None or lines else 0
            if outcome is not None:
                done[name] = 1
                self._pending.pop((source.key, name), None)
                tally.files[("cloudfront", outcome)] += 1

    def _waited_long_enough(self, source: Source, name: str, stat_: os.stat_result) -> bool:
        """Whether a file that cannot be read yet (cut short, unreadable) has waited
        :data:`GIVE_UP_AFTER`: since its last change by its mtime, or, whatever its mtime
        says (one in the future never ages), unchanged for that long under our eyes."""
        now = self._clock()
        signature = (stat_.st_size, stat_.st_mtime_ns)
        seen = self._pending.get((source.key, name))
        if seen is None or seen[0] != signature:
            self._pending[(source.key, name)] = seen = (signature, now)
        return now - stat_.st_mtime >= GIVE_UP_AFTER or now - seen[1] >= GIVE_UP_AFTER

    def _read_cloudfront_file(
        self, source: Source, name: str, tally: _Tally
    ) -> tuple[str | None, int]:
        """(``done`` or ``bad``, or ``None`` to try again on a later poll; lines read).

        A file that is not a regular file (a FIFO, a device, a symlink: an S3 sync
        writes none) is ``bad`` at once; one that cannot be opened, or is still being
        written, is tried again until it has waited :data:`GIVE_UP_AFTER`; either way
        the other files of the directory are read on."""
        path = source.path / name
        local = _Tally()
        columns = _CloudFrontColumns()
        try:
            with open_regular(path, follow=False) as raw:
                gz = raw.read(2) == b"\x1f\x8b"
                raw.seek(0)
                stream: IO[bytes] = gzip.GzipFile(fileobj=raw) if gz else raw  # type: ignore[assignment]
                reader = LineReader(stream.read)
                for count, line in enumerate(
                    reader.lines(max_bytes=MAX_FILE_BYTES, max_lines=MAX_FILE_LINES), 1
                ):
                    if count % STOP_CHECK_LINES == 0 and self._stop.is_set():
                        return None, count  # shutting down: read whole at the next start
                    if line is None:
                        self._count("cloudfront", "oversized", None, local)
                    else:
                        outcome, stem = columns.line(line)
                        self._count("cloudfront", outcome, stem, local)
                if reader.limited or reader.consumed + len(reader.tail) >= MAX_FILE_BYTES:
                    raise _TooLarge
                if reader.tail:  # a complete file's last line without a newline
                    outcome, stem = columns.line(reader.tail)
                    self._count("cloudfront", outcome, stem, local)
        except FileNotFoundError:  # gone between the listing and the open
            return None, 0
        except NotRegularFile as exc:
            self._warn(source, "skip", "CDN log %s: %s, skipped", shown(path), exc.strerror)
            return "bad", 0
        except (_TooLarge, gzip.BadGzipFile, zlib.error):  # BadGzipFile is an OSError
            self._warn(
                source,
                "bad",
                "CDN log %s: corrupt gzip, or over %d bytes or %d lines: skipped",
                shown(path),
                MAX_FILE_BYTES,
                MAX_FILE_LINES,
            )
            return "bad", sum(local.lines.values())
        except (EOFError, OSError) as exc:  # cut short (still being written?) or unreadable
            lines = sum(local.lines.values())
            try:
                if not self._waited_long_enough(source, name, os.stat(path)):
                    return None, lines
            except FileNotFoundError:
                return None, lines
            why = exc.strerror if isinstance(exc, OSError) else None
            why = "gzip cut short" if isinstance(exc, EOFError) else why or type(exc).__name__
            self._warn(source, "give-up", "CDN log %s: %s for %ds, skipped", shown(path), why,
                       GIVE_UP_AFTER)  # fmt: skip
            return "bad", lines
        tally.add(local)
        return "done", sum(local.lines.values())

    def _warn(self, source: Source, kind: str, message: str, *args: object) -> None:
        """A warning about one file, at most a few of one kind a streak (a directory of
        thousands of bad files says so once, then at DEBUG)."""
        log.log(self._repeats.level(f"{source.key}:{kind}"), message, *args)

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
        if not stat.S_ISREG(now.st_mode):  # replaced by a FIFO or a device: not followed
            raise NotRegularFile(errno.EINVAL, "not a regular file")
        held_stat = os.fstat(held.fileno())
        if (now.st_dev, now.st_ino) != (held_stat.st_dev, held_stat.st_ino):
            # renamed: what was written to the old file before the switch is read now
            self._drain(held, own, tally, None, final=True)  # it will not grow: to its end
            held.close()
            fresh = open_regular(source.path)  # held across polls
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
            # a FIFO at the path blocked a plain open() for ever, /dev/zero never ended
            handle = open_regular(source.path)  # held across polls
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
                with open_regular(old) as previous:
                    was = os.fstat(previous.fileno())
                    if (was.st_dev, was.st_ino) == (own.get("dev"), own.get("ino")):
                        previous.seek(own.get("offset", 0))
                        self._drain(previous, dict(own), tally, None, final=True)
            except (FileNotFoundError, NotRegularFile):
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
        most = None if final else MAX_LINES_PER_POLL  # the rest waits for the next poll
        for line in reader.lines(max_bytes=max_bytes, max_lines=most):
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
