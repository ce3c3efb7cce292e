"""The SLO file: key types, TTLs and objectives, loaded and validated.

Loaded in two steps, as Sloth does: YAML → checked spec (every error names the
file, the field and what was expected) → a frozen model with real types
(``timedelta``, ratios as floats).  Nothing starts on a half-valid file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from exporter.metrics import LATENCY_BUCKETS, OPERATIONS, RESERVED_TYPE_NAMES, TYPE_OTHER

SUPPORTED_VERSIONS = (1,)
DEFAULT_SLO_NAME = "slo.yaml"

_DURATION_RE = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$")
_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_PREFIX_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class SLOError(ValueError):
    """A bad SLO file: says which file, which field, and what was expected."""

    def __init__(self, source: str, field_path: str, expected: str, got: object = None) -> None:
        self.source = source
        self.field_path = field_path
        self.expected = expected
        got_text = "" if got is None else f", got {got!r}"
        super().__init__(f"{source}: {field_path}: expected {expected}{got_text}")


def parse_duration(text: str) -> timedelta:
    """Parse Prometheus-style durations: ``10ms``, ``15m``, ``1h30m``, ``7d``."""
    match = _DURATION_RE.match(text.strip()) if isinstance(text, str) else None
    if not match or not any(match.groups()):
        raise ValueError(f"not a duration: {text!r}")
    d, h, m, s, ms = (int(g) if g else 0 for g in match.groups())
    return timedelta(days=d, hours=h, minutes=m, seconds=s, milliseconds=ms)


def format_duration(value: timedelta) -> str:
    """Format a timedelta as the shortest Prometheus duration (``1h30m``, ``10ms``)."""
    total_ms = round(value.total_seconds() * 1000)
    if total_ms <= 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, total_ms = divmod(total_ms, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


@dataclass(frozen=True)
class KeyType:
    """One kind of cached data: its key prefix, TTL, tenant scope and objective."""

    name: str
    prefix: str
    ttl: timedelta
    tenant_scoped: bool
    hit_rate_objective: float | None = None

    @property
    def ttl_seconds(self) -> int:
        return int(self.ttl.total_seconds())


@dataclass(frozen=True)
class LatencySLO:
    """Fraction ``objective`` of ``operation`` calls must finish within ``threshold``."""

    operation: str
    threshold: timedelta
    objective: float

    @property
    def threshold_seconds(self) -> float:
        return self.threshold.total_seconds()


@dataclass(frozen=True)
class SLO:
    """The validated SLO file."""

    version: int
    window: timedelta
    hit_rate_objective: float
    min_read_rate: float
    latency: LatencySLO
    key_types: tuple[KeyType, ...]
    source: str = "<default>"
    _by_prefix: dict[str, KeyType] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_prefix.update({kt.prefix: kt for kt in self.key_types})

    @property
    def type_names(self) -> tuple[str, ...]:
        """Every ``type`` label value the client and exporter may emit."""
        return (*(kt.name for kt in self.key_types), TYPE_OTHER)

    def key_type(self, name: str) -> KeyType:
        for kt in self.key_types:
            if kt.name == name:
                return kt
        known = ", ".join(kt.name for kt in self.key_types)
        raise KeyError(f"unknown key type {name!r} (the SLO file declares: {known})")

    def type_of_key(self, key: str | bytes) -> str:
        """Classify a raw Redis key by its prefix; ``other`` when none matches."""
        if isinstance(key, bytes):
            key = key.decode("utf-8", "replace")
        prefix, sep, _ = key.partition(":")
        kt = self._by_prefix.get(prefix) if sep else None
        return kt.name if kt else TYPE_OTHER

    @property
    def objectives(self) -> dict[str, float]:
        """Hit-rate objectives by type label, ``all`` for the overall one."""
        found = {"all": self.hit_rate_objective}
        found.update(
            {kt.name: kt.hit_rate_objective for kt in self.key_types if kt.hit_rate_objective}
        )
        return found


@dataclass(frozen=True)
class FieldDoc:
    """One field of the SLO file, for validation and the configuration reference."""

    path: str
    kind: str
    required: bool
    default: str
    meaning: str


#: every field the SLO file accepts; the parser's allowed-field sets derive from it
SLO_FIELDS: tuple[FieldDoc, ...] = (
    FieldDoc("version", "integer", True, "", "Format version of the file; only 1 exists."),
    FieldDoc(
        "window", "duration", True, "", "Window every objective is measured over (budget period)."
    ),
    FieldDoc("hit_rate", "mapping", True, "", "The overall hit-rate objective."),
    FieldDoc("hit_rate.objective", "ratio (0-1)", True, "", "Overall hit rate target (ADR: 0.80)."),
    FieldDoc(
        "hit_rate.min_read_rate",
        "reads/second",
        False,
        "0.1",
        "Below this read rate a hit-rate alert stays silent (low-traffic guard).",
    ),
    FieldDoc("latency", "mapping", True, "", "The latency SLO."),
    FieldDoc("latency.operation", "operation", False, "get", "Client operation the SLO covers."),
    FieldDoc(
        "latency.threshold",
        "duration",
        True,
        "",
        "Calls faster than this are good; must be a cache_latency_seconds bucket boundary.",
    ),
    FieldDoc(
        "latency.objective", "ratio (0-1)", True, "", "Fraction of calls within the threshold."
    ),
    FieldDoc("key_types", "list", True, "", "The kinds of cached data, one entry each."),
    FieldDoc(
        "key_types[].name",
        "name",
        True,
        "",
        "Value of the type label; lower case, not other, unattributed or all.",
    ),
    FieldDoc("key_types[].prefix", "string", False, "the name", "First key segment (prefix:...)."),
    FieldDoc(
        "key_types[].ttl", "duration", True, "", "TTL set() applies when the caller gives none."
    ),
    FieldDoc(
        "key_types[].tenant_scoped",
        "boolean",
        True,
        "",
        "Keys carry the tenant id as second segment; building one without a tenant is an error.",
    ),
    FieldDoc(
        "key_types[].hit_rate_objective",
        "ratio (0-1)",
        False,
        "none",
        "Per-type hit-rate target; alerts and burn-rate rules are generated for it.",
    ),
)


def _allowed(section: str) -> set[str]:
    """Field names accepted directly under ``section`` ("" for the top level)."""
    prefix = f"{section}." if section else ""
    return {
        f.path[len(prefix) :]
        for f in SLO_FIELDS
        if f.path.startswith(prefix) and "." not in f.path[len(prefix) :]
    }


# --- loading --------------------------------------------------------------------


def _ratio(source: str, where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise SLOError(source, where, "a ratio strictly between 0 and 1 (e.g. 0.95)", value)
    return float(value)


def _duration(source: str, where: str, value: Any) -> timedelta:
    try:
        parsed = parse_duration(value)
    except ValueError:
        expected = "a duration such as '10ms', '15m', '24h' or '7d'"
        raise SLOError(source, where, expected, value) from None
    if parsed <= timedelta(0):
        raise SLOError(source, where, "a duration greater than zero", value)
    return parsed


def _mapping(source: str, where: str, value: Any, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        what = "a mapping of fields" if where else "a YAML mapping (version, window, ...)"
        got = "an empty file" if value is None and not where else value
        raise SLOError(source, where or "(document)", what, got)
    unknown = sorted(set(map(str, value)) - allowed)
    if unknown:
        raise SLOError(
            source,
            f"{where}.{unknown[0]}" if where else unknown[0],
            f"one of the known fields ({', '.join(sorted(allowed))})",
        )
    return value


def _required(source: str, where: str, data: dict[str, Any], key: str) -> Any:
    if key not in data:
        raise SLOError(source, f"{where}.{key}" if where else key, "this field (it is required)")
    return data[key]


def _key_type(source: str, where: str, raw: Any) -> KeyType:
    data = _mapping(source, where, raw, _allowed("key_types[]"))
    name = _required(source, where, data, "name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise SLOError(source, f"{where}.name", "a lower-case name like 'llm-response'", name)
    if name in RESERVED_TYPE_NAMES:
        raise SLOError(
            source,
            f"{where}.name",
            f"a name other than the reserved {', '.join(sorted(RESERVED_TYPE_NAMES))}",
            name,
        )
    prefix = data.get("prefix", name)
    if not isinstance(prefix, str) or not _PREFIX_RE.match(prefix):
        raise SLOError(
            source, f"{where}.prefix", "a key prefix of letters, digits, '_', '.' or '-'", prefix
        )
    ttl = _duration(source, f"{where}.ttl", _required(source, where, data, "ttl"))
    scoped = _required(source, where, data, "tenant_scoped")
    if not isinstance(scoped, bool):
        raise SLOError(source, f"{where}.tenant_scoped", "true or false", scoped)
    objective = data.get("hit_rate_objective")
    if objective is not None:
        objective = _ratio(source, f"{where}.hit_rate_objective", objective)
    return KeyType(name, prefix, ttl, scoped, objective)


def parse_slo(raw: Any, source: str = "<string>") -> SLO:
    """Validate a parsed YAML document and build the :class:`SLO` model."""
    top = _mapping(source, "", raw, _allowed(""))
    version = _required(source, "", top, "version")
    if version not in SUPPORTED_VERSIONS:
        supported = ", ".join(map(str, SUPPORTED_VERSIONS))
        raise SLOError(source, "version", f"a supported format version ({supported})", version)
    window = _duration(source, "window", _required(source, "", top, "window"))

    hit = _mapping(source, "hit_rate", _required(source, "", top, "hit_rate"), _allowed("hit_rate"))
    hit_objective = _ratio(
        source, "hit_rate.objective", _required(source, "hit_rate", hit, "objective")
    )
    min_rate = hit.get("min_read_rate", 0.1)
    if isinstance(min_rate, bool) or not isinstance(min_rate, int | float) or min_rate < 0:
        raise SLOError(
            source, "hit_rate.min_read_rate", "a number of reads per second >= 0", min_rate
        )

    lat = _mapping(source, "latency", _required(source, "", top, "latency"), _allowed("latency"))
    operation = lat.get("operation", "get")
    if operation not in OPERATIONS:
        raise SLOError(source, "latency.operation", f"one of {', '.join(OPERATIONS)}", operation)
    threshold = _duration(
        source, "latency.threshold", _required(source, "latency", lat, "threshold")
    )
    if threshold.total_seconds() not in LATENCY_BUCKETS:
        bounds = ", ".join(format_duration(timedelta(seconds=b)) for b in LATENCY_BUCKETS)
        raise SLOError(
            source,
            "latency.threshold",
            f"a bucket boundary of cache_latency_seconds ({bounds})",
            lat["threshold"],
        )
    latency = LatencySLO(
        operation,
        threshold,
        _ratio(source, "latency.objective", _required(source, "latency", lat, "objective")),
    )

    raw_types = _required(source, "", top, "key_types")
    if not isinstance(raw_types, list) or not raw_types:
        raise SLOError(source, "key_types", "a non-empty list of key types", raw_types)
    key_types = tuple(_key_type(source, f"key_types[{i}]", kt) for i, kt in enumerate(raw_types))
    seen_names: set[str] = set()
    seen_prefixes: set[str] = set()
    for i, kt in enumerate(key_types):
        if kt.name in seen_names:
            raise SLOError(
                source, f"key_types[{i}].name", "a name not used by another key type", kt.name
            )
        if kt.prefix in seen_prefixes:
            raise SLOError(
                source, f"key_types[{i}].prefix", "a prefix not used by another key type", kt.prefix
            )
        seen_names.add(kt.name)
        seen_prefixes.add(kt.prefix)
    return SLO(int(version), window, hit_objective, float(min_rate), latency, key_types, source)


def load_slo(path: str | Path | None = None) -> SLO:
    """Load and validate an SLO file; ``None`` loads the shipped ADR-004 defaults."""
    if path is None:
        text = default_slo_path().read_text("utf-8")
        source = f"<default {DEFAULT_SLO_NAME}>"
    else:
        source = str(path)
        try:
            text = Path(path).read_text("utf-8")
        except OSError as exc:
            raise SLOError(source, "(file)", "a readable SLO file", exc.strerror) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "(file)"
        raise SLOError(source, where, "valid YAML", str(getattr(exc, "problem", exc))) from None
    return parse_slo(raw, source)


def default_slo_path() -> Path:
    """Path of the shipped default SLO file (for ``--slo`` help and docs)."""
    return Path(__file__).parent / "data" / DEFAULT_SLO_NAME
