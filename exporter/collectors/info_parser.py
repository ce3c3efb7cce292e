"""Parse the text of Redis ``INFO`` into plain data, nothing else.

Kept apart from emitting metrics (as the Go redis_exporter keeps ``info.go``)
so it can be tested table-driven on captures from several Redis versions.
Sections a server does not have (``latencystats`` and ``errorstats`` before
Redis 7) simply come out empty.

The text comes from whatever answers on the Redis port, so the parser never
raises on it: a line or record that does not parse (no ``:``, a value that is
not a finite number, a percentile that is not ``p`` and a number in 0..100, a
database that is not ``db`` and a number) is skipped and counted in
:attr:`RedisInfo.skipped`; the rest of the reply is kept.  Only the optional
``stop_at`` deadline ends a parse early (:class:`DeadlineExceeded`).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from exporter.collectors._deadline import DeadlineExceeded

#: line prefixes of the sections whose lines carry ``name:k=v,k=v`` records
_COMMANDSTAT = "cmdstat_"
_LATENCYSTAT = "latency_percentiles_usec_"
_ERRORSTAT = "errorstat_"
#: lines parsed between two looks at the clock (when a deadline is given)
_CLOCK_EVERY = 2048
#: lines kept per record section (commandstats, latencystats, errorstats, keyspace):
#: a real server lists a few hundred at most; past this, lines are only counted
#: (:attr:`RedisInfo.excess`), so a reply naming 100 k commands costs a split, not
#: 100 k records to sort and sum
MAX_SECTION_LINES = 10_000
#: skipped names kept for the log (each cut to this many characters)
_EXAMPLES = 3
_EXAMPLE_CHARS = 60


class InfoParseError(ValueError):
    """A reply that is not INFO text at all (not a string): names what was expected."""


class Records(Mapping[str, dict[str, float]]):
    """``name -> {key: number}`` of one record section, each line parsed on first use.

    A reply may name a hundred thousand commands; the collector reads the few it
    keeps a series for and :meth:`fold` sums one key over the rest in C loops, so
    the cost of a huge section is a split and a regex, not a float per record.
    Records that do not parse are left out of their line and counted in
    :attr:`skipped` once that line has been read."""

    def __init__(self, raw: dict[str, str], *, latency: bool = False) -> None:
        self._raw = raw
        self._latency = latency
        self._parsed: dict[str, dict[str, float]] = {}
        self._bad: dict[str, None] = {}  # insertion-ordered: the first ones for the log

    def __getitem__(self, name: str) -> dict[str, float]:
        found = self._parsed.get(name)
        if found is None:
            found, complete = _records(self._raw[name], self._latency)
            self._parsed[name] = found
            if not complete:
                self._bad[name] = None
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def __contains__(self, name: object) -> bool:
        return name in self._raw

    def __repr__(self) -> str:
        return f"Records({dict(self.items())!r})"

    def width(self, name: str) -> int:
        """How many records line ``name`` holds (without parsing it)."""
        return self._raw[name].count(",") + 1

    def bad_names(self, most: int) -> list[str]:
        """The first ``most`` lines read so far with a record that did not parse."""
        return list(self._bad)[:most]

    @property
    def skipped(self) -> int:
        """Lines read so far with a record that did not parse."""
        return len(self._bad)

    def fold(self, names: Iterable[str], keys: Iterable[str]) -> dict[str, tuple[float, int]]:
        """``{key: (sum, lines)}`` of each record ``key`` over ``names``: its sum over
        the lines that have it, and how many those are."""
        chosen = list(names)
        joined = "," + ",".join(self._raw[name] for name in chosen)
        out: dict[str, tuple[float, int]] = {}
        for key in keys:
            values = re.findall(f",{re.escape(key)}=([^,]*)", joined)
            try:
                total = math.fsum(map(float, values))
            except ValueError:
                total = math.nan
            if math.isfinite(total) and len(values) <= len(chosen):
                out[key] = (total, len(values))
                continue
            # something did not parse: line by line, so it is skipped and counted
            found = [record[key] for name in chosen if key in (record := self[name])]
            out[key] = (math.fsum(found), len(found))
        return out


@dataclass(frozen=True)
class RedisInfo:
    """One ``INFO ALL`` reply, split into what the collector needs.

    ``fields`` holds the plain ``field:value`` lines keyed by section (lower
    case) then field; the record sections are split out with numbers parsed.
    """

    fields: dict[str, dict[str, str]] = field(default_factory=dict)
    #: command -> {"calls", "usec", "rejected_calls", "failed_calls", ...}
    commandstats: Records = field(default_factory=lambda: Records({}))
    #: command -> {"p50": usec, "p99": usec, "p99.9": usec}  (Redis 7+)
    latencystats: Records = field(default_factory=lambda: Records({}, latency=True))
    #: error prefix (``ERR``, ``WRONGTYPE``, ...) -> count  (Redis 7+)
    errorstats: dict[str, float] = field(default_factory=dict)
    #: ``db0`` -> {"keys", "expires", "avg_ttl"}
    keyspace: Records = field(default_factory=lambda: Records({}))
    #: lines that did not parse and were left out (records: see ``skipped``)
    skipped_lines: int = 0
    #: the first few of them (field names, cut short), for a log line
    skipped_lines_names: tuple[str, ...] = ()
    #: record section -> lines past :data:`MAX_SECTION_LINES`, left out unread
    excess: dict[str, int] = field(default_factory=dict)

    @property
    def skipped(self) -> int:
        """Lines left out, plus the lines read so far with a record that did not parse."""
        sections = (self.commandstats, self.latencystats, self.keyspace)
        return self.skipped_lines + sum(records.skipped for records in sections)

    @property
    def skipped_names(self) -> tuple[str, ...]:
        """The first few field names of :attr:`skipped`, cut short (for a log line)."""
        names = list(self.skipped_lines_names)
        for prefix, records in (
            (_COMMANDSTAT, self.commandstats),
            (_LATENCYSTAT, self.latencystats),
            ("", self.keyspace),
        ):
            names += [prefix + name for name in records.bad_names(_EXAMPLES)]
        return tuple(name[:_EXAMPLE_CHARS] for name in names[:_EXAMPLES])

    def get(self, section: str, name: str) -> str | None:
        """Raw value of ``name`` in ``section``, ``None`` when this server lacks it."""
        return self.fields.get(section, {}).get(name)

    @property
    def version(self) -> str:
        return self.get("server", "redis_version") or ""


def number(text: str) -> float | None:
    """A finite number, or None (``nan``, ``inf`` and words are not counts)."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def percentile(name: str) -> float | None:
    """``p99.9`` -> 99.9; None unless ``p`` and a number in 0..100."""
    if not name.startswith("p"):
        return None
    value = number(name[1:])
    return value if value is not None and 0.0 <= value <= 100.0 else None


def pairs(text: str) -> dict[str, str]:
    """``ip=10.0.0.2,port=6379,state=online`` -> ``{"ip": "10.0.0.2", ...}``: the
    ``slaveN`` lines of a master and the ``masterN`` lines of a Sentinel, whose values
    are words as well as numbers.  Parts without ``=`` are left out."""
    out: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if sep and key:
            out[key] = value
    return out


def label_text(value: str, most: int = 100) -> str:
    """A value Redis returned, fit to be a label value: printable characters only,
    at most ``most`` of them (a host name, a replica state, a Sentinel's master name)."""
    return "".join(ch for ch in value[: most * 2] if ch.isprintable())[:most]


def _records(text: str, latency: bool = False) -> tuple[dict[str, float], bool]:
    """``calls=1,usec=16`` -> ``({"calls": 1.0, "usec": 16.0}, complete)``; records that
    do not parse are left out and ``complete`` is False."""
    out: dict[str, float] = {}
    complete = True
    for part in text.split(","):
        key, sep, raw = part.partition("=")
        value = number(raw) if sep and key else None
        if value is None or (latency and percentile(key) is None):
            complete = False
            continue
        out[key] = value
    return out, complete


def _is_db(name: str) -> bool:
    return name.startswith("db") and name[2:].isdigit() and len(name) <= 12


def parse_info(text: str, *, stop_at: float | None = None) -> RedisInfo:
    """Parse ``INFO`` / ``INFO ALL`` text (``\\r\\n`` or ``\\n`` line ends).

    Never raises on the text; ``DeadlineExceeded`` once ``time.monotonic()`` passes
    ``stop_at`` (checked every couple of thousand lines)."""
    fields: dict[str, dict[str, str]] = {}
    commandstats: dict[str, str] = {}
    latencystats: dict[str, str] = {}
    errorstats: dict[str, float] = {}
    keyspace: dict[str, str] = {}
    skipped = 0
    examples: list[str] = []
    excess: dict[str, int] = {}

    def room(kept: Mapping[str, object], key: str, section: str) -> bool:
        if len(kept) < MAX_SECTION_LINES or key in kept:
            return True
        excess[section] = excess.get(section, 0) + 1
        return False

    def skip(name: str) -> None:
        nonlocal skipped
        skipped += 1
        if len(examples) < _EXAMPLES:
            examples.append(name[:_EXAMPLE_CHARS])

    section = ""
    for lineno, raw_line in enumerate(text.splitlines()):
        if stop_at is not None and lineno % _CLOCK_EVERY == 0 and time.monotonic() > stop_at:
            raise DeadlineExceeded("INFO: no time left to parse the reply")
        line = raw_line.strip()
        if not line:
            continue
        if line.startswith("#"):
            section = line.lstrip("#").strip().lower()
            fields.setdefault(section, {})
            continue
        name, sep, value = line.partition(":")
        if not sep or not name:
            skip(line)
        elif section == "commandstats" and name.startswith(_COMMANDSTAT):
            cmd = name[len(_COMMANDSTAT) :]
            if not cmd:
                skip(name)
            elif room(commandstats, cmd, section):
                commandstats[cmd] = value
        elif section == "latencystats" and name.startswith(_LATENCYSTAT):
            cmd = name[len(_LATENCYSTAT) :]
            if not cmd:
                skip(name)
            elif room(latencystats, cmd, section):
                latencystats[cmd] = value
        elif section == "errorstats" and name.startswith(_ERRORSTAT):
            prefix = name[len(_ERRORSTAT) :]
            if not room(errorstats, prefix, section):
                continue
            records, _ = _records(value)
            if "count" in records and prefix:
                errorstats[prefix] = records["count"]
            else:
                skip(name)
        elif section == "keyspace":
            if not _is_db(name):
                skip(name)
            elif room(keyspace, name, section):
                keyspace[name] = value
        else:
            fields.setdefault(section, {})[name] = value
    return RedisInfo(
        fields=fields,
        commandstats=Records(commandstats),
        latencystats=Records(latencystats, latency=True),
        errorstats=errorstats,
        keyspace=Records(keyspace),
        skipped_lines=skipped,
        skipped_lines_names=tuple(examples),
        excess=excess,
    )
