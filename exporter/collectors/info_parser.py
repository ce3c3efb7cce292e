"""Parse the text of Redis ``INFO`` into plain data, nothing else.

Kept apart from emitting metrics (as the Go redis_exporter keeps ``info.go``)
so it can be tested table-driven on captures from several Redis versions.
Sections a server does not have (``latencystats`` and ``errorstats`` before
Redis 7) simply come out empty.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: line prefixes of the sections whose lines carry ``name:k=v,k=v`` records
_COMMANDSTAT = "cmdstat_"
_LATENCYSTAT = "latency_percentiles_usec_"
_ERRORSTAT = "errorstat_"


class InfoParseError(ValueError):
    """INFO text that is not ``field:value`` lines: names the line and what was expected."""


@dataclass(frozen=True)
class RedisInfo:
    """One ``INFO ALL`` reply, split into what the collector needs.

    ``fields`` holds the plain ``field:value`` lines keyed by section (lower
    case) then field; the record sections are split out with numbers parsed.
    """

    fields: dict[str, dict[str, str]] = field(default_factory=dict)
    #: command -> {"calls", "usec", "rejected_calls", "failed_calls", ...}
    commandstats: dict[str, dict[str, float]] = field(default_factory=dict)
    #: command -> {"p50": usec, "p99": usec, "p99.9": usec}  (Redis 7+)
    latencystats: dict[str, dict[str, float]] = field(default_factory=dict)
    #: error prefix (``ERR``, ``WRONGTYPE``, ...) -> count  (Redis 7+)
    errorstats: dict[str, float] = field(default_factory=dict)
    #: ``db0`` -> {"keys", "expires", "avg_ttl"}
    keyspace: dict[str, dict[str, float]] = field(default_factory=dict)

    def get(self, section: str, name: str) -> str | None:
        """Raw value of ``name`` in ``section``, ``None`` when this server lacks it."""
        return self.fields.get(section, {}).get(name)

    @property
    def version(self) -> str:
        return self.get("server", "redis_version") or ""


def _records(text: str, where: str) -> dict[str, float]:
    """``calls=1,usec=16`` -> ``{"calls": 1.0, "usec": 16.0}``."""
    out: dict[str, float] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise InfoParseError(f"INFO {where}: expected key=value pairs, got {part!r}")
        try:
            out[key] = float(value)
        except ValueError:
            raise InfoParseError(f"INFO {where}: {key}: expected a number, got {value!r}") from None
    return out


def parse_info(text: str) -> RedisInfo:
    """Parse ``INFO`` / ``INFO ALL`` text (``\\r\\n`` or ``\\n`` line ends)."""
    info = RedisInfo()
    section = ""
    for lineno, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.strip()
        if not line:
            continue
        if line.startswith("#"):
            section = line.lstrip("#").strip().lower()
            info.fields.setdefault(section, {})
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise InfoParseError(f"INFO line {lineno}: expected 'field:value', got {line!r}")
        if section == "commandstats" and name.startswith(_COMMANDSTAT):
            info.commandstats[name[len(_COMMANDSTAT) :]] = _records(value, name)
        elif section == "latencystats" and name.startswith(_LATENCYSTAT):
            info.latencystats[name[len(_LATENCYSTAT) :]] = _records(value, name)
        elif section == "errorstats" and name.startswith(_ERRORSTAT):
            info.errorstats[name[len(_ERRORSTAT) :]] = _records(value, name).get("count", 0.0)
        elif section == "keyspace":
            info.keyspace[name] = _records(value, name)
        else:
            info.fields.setdefault(section, {})[name] = value
    return info
