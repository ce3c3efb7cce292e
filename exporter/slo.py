"""The SLO file: key types, TTLs and objectives, loaded and validated.

Loaded in two steps, as Sloth does: YAML → checked spec (every error names the
file, the field and what was expected) → a frozen model with real types
(``timedelta``, ratios as floats).  Nothing starts on a half-valid file.
"""

from __future__ import annotations

import math
import re
import reprlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from exporter.metrics import (
    API_LATENCY_BUCKETS,
    LATENCY_BUCKETS,
    LAYER_BROWSER,
    LAYER_CDN,
    LAYER_POSTGRES,
    OPERATIONS,
    RESERVED_TYPE_NAMES,
    TYPE_ALL,
    TYPE_OTHER,
    TYPE_POSTGRES_BUFFER,
)

SUPPORTED_VERSIONS = (1,)
DEFAULT_SLO_NAME = "slo.yaml"

#: each unit's count has at most 12 digits (one more cannot be a sane duration)
_DURATION_RE = re.compile(
    r"^(?:(\d{1,12})d)?(?:(\d{1,12})h)?(?:(\d{1,12})m(?!s))?(?:(\d{1,12})s)?(?:(\d{1,12})ms)?$"
)
_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_PREFIX_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
#: a service name is a label value and part of generated file names: kept to a safe alphabet
#: (also a Kubernetes object-name part: lower-case alphanumerics, - and ., alphanumeric ends)
_SERVICE_RE = re.compile(r"^[a-z0-9](?:[a-z0-9.-]{0,61}[a-z0-9])?$")
_LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]{0,62}$")
#: most grouping labels and selector matchers a service may declare
MAX_GROUP_LABELS = 4
MAX_MATCHERS = 8
#: labels the generated rules set or aggregate by themselves: a grouping label or a
#: selector cannot take them (``job`` may select, ``instance`` may not group: one
#: series per pod is what the aggregation exists to remove)
RULE_LABELS = frozenset(
    {"service", "type", "operation", "layer", "le", "slo", "severity", "long_window",
     "short_window", "error", "reason", "alertname", "component", "collector", "__name__",
     "cached", "route", "method", "status_class", "rule"}
)  # fmt: skip
NOT_GROUPING = RULE_LABELS | {"instance", "pod", "job"}
DEFAULT_SERVICE = "cache-app"
#: a runbook base URL: http(s), no whitespace or control characters, and no braces
#: (the alert annotation it ends up in is a Go template)
RUNBOOK_URL_RE = re.compile(r"^https?://[^\s\x00-\x1f\x7f{}]{1,500}$")
#: first segment of the client's early-refresh companion keys (``!xf:{key}``): they are
#: counted under their value's key type, not ``other``
COMPANION_PREFIX = "!xf"
DEFAULT_APP_JOB = "cache-app"
DEFAULT_EXPORTER_JOB = "cache-slo-exporter"


#: the largest SLO file read (the shipped one is under 2 KiB); larger ones are refused
#: before parsing, so no file can make the loader use much time or memory
MAX_FILE_BYTES = 64 * 1024
#: deepest nesting of YAML collections accepted (the format itself needs 3 levels)
MAX_DEPTH = 8
#: most key types a file may declare (each is a ``type`` label value and a set of rules)
MAX_KEY_TYPES = 100
#: the SLO window's bounds.  The burn-rate tiers scale a 30-day table by window/30d;
#: below 7 days the page tier's short window (5m x window/30d) falls under a minute,
#: shorter than the rules can measure (a rate needs several scrapes) and than the
#: promtool tests' 1m evaluation step.  A year is the longest window a budget is
#: usually kept for (and its promtool tests already take about two minutes).
MIN_WINDOW = timedelta(days=7)
MAX_WINDOW = timedelta(days=365)
#: a key type's TTL: whole seconds are what a cache policy means; a year is far beyond
#: any cached data's useful life
MIN_TTL = timedelta(seconds=1)
MAX_TTL = timedelta(days=365)
#: ratios are written with at most this many decimal places (0.999999 at most):
#: finer objectives have budgets the generated promtool tests cannot resolve
RATIO_DECIMALS = 6
#: the low-traffic guard, reads per second: 0 (off) or between these bounds
#: the latency objective is also the quantile the ADR's HighCacheLatency alert reads
#: (p99 for 0.99): below the median it no longer says "most calls are fast"
LATENCY_OBJECTIVE_LOW = 0.5
MIN_READ_RATE_BOUNDS = (0.000001, 1_000_000.0)
#: the API objective's defaults: ADR-004's "API p95 < 200 ms for cached data"
DEFAULT_API_THRESHOLD = timedelta(milliseconds=200)
DEFAULT_API_OBJECTIVE = 0.95
#: ``api.cached``: which responses the API objective counts (``any``: all of them)
API_CACHED_CHOICES = ("true", "false", "any")
DEFAULT_API_CACHED = "true"
#: most route templates ``api.routes`` may list (the middleware keeps at most 256)
MAX_API_ROUTES = 32
#: a route template as the middleware labels it: ``/api/users/{user_id}``
_ROUTE_RE = re.compile(r"^/[A-Za-z0-9_.~/{}:-]{0,199}$")
#: layers whose hit rate ``layers`` may set objectives for (Redis' are per key type)
OBJECTIVE_LAYERS = (LAYER_CDN, LAYER_BROWSER, LAYER_POSTGRES)
#: most types one layer may set an objective for (the path classes are at most 32)
MAX_LAYER_TYPES = 32
#: the longest part of the input an error message echoes
MAX_SHOWN_CHARS = 60

_SHOWN = reprlib.Repr()
_SHOWN.maxstring = MAX_SHOWN_CHARS
_SHOWN.maxother = MAX_SHOWN_CHARS
_SHOWN.maxlong = 24
_SHOWN.maxlevel = 2
_SHOWN.maxdict = _SHOWN.maxlist = _SHOWN.maxtuple = _SHOWN.maxset = 4


def shown(text: str, limit: int = MAX_SHOWN_CHARS) -> str:
    """``text`` on one line and at most ``limit`` characters: anything unprintable
    (newlines, control and bidi characters) escaped, the rest cut with ``...``."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[: limit + 1])
    return text if len(text) <= limit else text[: limit - 3] + "..."


def shown_value(value: object) -> str:
    """A bounded ``repr`` of a value from the file (never the whole of a big one)."""
    return shown(_SHOWN.repr(value))


class SLOError(ValueError):
    """A bad SLO file: says which file, which field, and what was expected.

    The message is always one line, and echoes at most :data:`MAX_SHOWN_CHARS`
    characters of anything the file (or its name) holds.
    """

    def __init__(self, source: str, field_path: str, expected: str, got: object = None) -> None:
        self.source = source
        self.field_path = field_path
        self.expected = expected
        got_text = "" if got is None else f", got {shown_value(got)}"
        super().__init__(
            f"{shown(source, 200)}: {shown(field_path, 120)}: expected {shown(expected, 400)}"
            f"{got_text}"
        )


def parse_duration(text: str) -> timedelta:
    """Parse Prometheus-style durations: ``10ms``, ``15m``, ``1h30m``, ``7d``."""
    match = _DURATION_RE.match(text.strip()) if isinstance(text, str) else None
    if not match or not any(match.groups()):
        raise ValueError(f"not a duration: {text!r}")
    d, h, m, s, ms = (int(g) if g else 0 for g in match.groups())
    try:
        return timedelta(days=d, hours=h, minutes=m, seconds=s, milliseconds=ms)
    except OverflowError:  # beyond timedelta's 999999999 days
        raise ValueError(f"not a duration: {text!r} is too long") from None


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
class ApiSLO:
    """Fraction ``objective`` of the API's requests must finish within ``threshold``.

    ``cached`` selects by the middleware's ``cached`` label (``any``: every
    request); ``routes`` lists route templates (empty: every route the app
    matched, never ``unmatched``).
    """

    threshold: timedelta = DEFAULT_API_THRESHOLD
    objective: float = DEFAULT_API_OBJECTIVE
    cached: str = DEFAULT_API_CACHED
    routes: tuple[str, ...] = ()

    @property
    def threshold_seconds(self) -> float:
        return self.threshold.total_seconds()


def selector_text(matchers: tuple[tuple[str, str], ...]) -> str:
    """``(("job", "x"),)`` -> ``job="x"`` (values escaped as PromQL strings)."""
    return ", ".join(
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in matchers
    )


@dataclass(frozen=True)
class Service:
    """Who the SLO is for and where its series are: one service of a platform.

    ``name`` becomes the ``service`` label of every recording and alert generated
    for it, so many services share one Prometheus (or Thanos/Mimir ruler) without
    merging; ``group_by`` labels (``cluster``, ``namespace``) are kept through every
    aggregation, one SLI per placement.
    """

    name: str = DEFAULT_SERVICE
    #: equality matchers selecting the instrumented application's series
    app: tuple[tuple[str, str], ...] = (("job", DEFAULT_APP_JOB),)
    #: equality matchers selecting the exporter's series (Redis, evictions, health)
    exporter: tuple[tuple[str, str], ...] = (("job", DEFAULT_EXPORTER_JOB),)
    group_by: tuple[str, ...] = ()
    #: where the alerts' runbooks live (``<base><AlertName>.md``); None: not set here
    runbook_base_url: str | None = None

    @property
    def app_selector(self) -> str:
        return selector_text(self.app)

    @property
    def exporter_selector(self) -> str:
        return selector_text(self.exporter)


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
    service: Service = field(default_factory=Service)
    #: the API latency objective, when the file has an ``api`` section
    api: ApiSLO | None = None
    #: hit-rate objectives of the other layers: ``{layer: {type: objective}}``
    layers: dict[str, dict[str, float]] = field(default_factory=dict, compare=False)
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
        prefix, sep, rest = key.partition(":")
        if prefix == COMPANION_PREFIX and sep:  # a companion: classify its value's key
            prefix, sep, _ = rest.removeprefix("{").partition(":")
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
        "service",
        "mapping",
        False,
        "",
        "Which service the objectives are for and how its series are selected; many "
        "SLO files (one per service) can share one Prometheus.",
    ),
    FieldDoc(
        "service.name",
        "name (a-z 0-9 . -)",
        False,
        DEFAULT_SERVICE,
        "Value of the service label on every generated recording and alert; prefixes the "
        "generated file names when several SLO files are generated together.",
    ),
    FieldDoc(
        "service.app_selector",
        "mapping label: value",
        False,
        f"job: {DEFAULT_APP_JOB}",
        "Equality matchers selecting the instrumented application's cache_* series "
        "(generate --app-job overrides job).",
    ),
    FieldDoc(
        "service.exporter_selector",
        "mapping label: value",
        False,
        f"job: {DEFAULT_EXPORTER_JOB}",
        "Equality matchers selecting the exporter's redis_* and per-type series "
        "(generate --exporter-job overrides job).",
    ),
    FieldDoc(
        "service.runbook_base_url",
        "http(s) URL",
        False,
        "a placeholder (generate warns)",
        "Prefix of every alert's runbook_url (<base><AlertName>.md); "
        "generate --runbook-base-url overrides it.",
    ),
    FieldDoc(
        "service.group_by",
        f"list of label names, at most {MAX_GROUP_LABELS}",
        False,
        "[]",
        "Placement labels kept through every aggregation (e.g. cluster, namespace): one "
        "SLI, budget and alert per value. Not instance, pod, job or a label the rules set.",
    ),
    FieldDoc(
        "window",
        "duration, 7d-365d",
        True,
        "",
        "Window every objective is measured over (budget period). The burn-rate windows "
        "scale with it (5m x window/30d is the shortest): below 7d they would be shorter "
        "than a minute.",
    ),
    FieldDoc("hit_rate", "mapping", True, "", "The overall hit-rate objective."),
    FieldDoc(
        "hit_rate.objective",
        "ratio (0-1, 6 decimals at most)",
        True,
        "",
        "Overall hit rate target (ADR: 0.80).",
    ),
    FieldDoc(
        "hit_rate.min_read_rate",
        "reads/second: 0 or 0.000001-1000000",
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
        "latency.objective",
        "ratio (0.5-1, 6 decimals at most)",
        True,
        "",
        "Fraction of calls within the threshold; also the quantile the ADR's latency alert "
        "reads (0.99: p99), so it must be above 0.5.",
    ),
    FieldDoc(
        "api",
        "mapping",
        False,
        "none",
        "The API latency objective over api_request_duration_seconds (exporter.asgi's "
        "middleware); with the section present, every field has the ADR's default. Without "
        "it no API rules are generated.",
    ),
    FieldDoc(
        "api.threshold",
        "duration",
        False,
        "200ms",
        "Requests faster than this are good; must be an api_request_duration_seconds "
        "bucket boundary (ADR: p95 < 200 ms).",
    ),
    FieldDoc(
        "api.objective",
        "ratio (0-1, 6 decimals at most)",
        False,
        "0.95",
        "Fraction of requests within the threshold (ADR: 0.95, i.e. p95).",
    ),
    FieldDoc(
        "api.cached",
        "true, false or any",
        False,
        "true",
        "Which requests count, by the middleware's cached label: true (answered from a "
        "cache, the ADR's 'for cached data'), false, or any (every request).",
    ),
    FieldDoc(
        "api.routes",
        f"list of route templates, at most {MAX_API_ROUTES}",
        False,
        "every matched route",
        "Route templates the objective covers (/api/users/{user_id}); requests no route "
        "matched (route unmatched: 404s, redirects) never count.",
    ),
    FieldDoc(
        "layers",
        "mapping",
        False,
        "none",
        "Hit-rate objectives of the other cache layers, per layer and type; rules, budgets "
        "and burn-rate alerts are generated like the Redis ones.",
    ),
    FieldDoc(
        "layers.cdn",
        "mapping type: ratio",
        False,
        "none",
        "CDN hit-rate objectives by path class (api: 0.9) or all for the whole layer; "
        'read from the exporter\'s cache_hits_total{layer="cdn"}.',
    ),
    FieldDoc(
        "layers.browser",
        "mapping type: ratio",
        False,
        "none",
        "Browser revalidation hit-rate objectives (conditional requests answered 304) by "
        "path class or all; read from the app's middleware.",
    ),
    FieldDoc(
        "layers.postgres",
        "mapping type: ratio",
        False,
        "none",
        "PostgreSQL buffer-cache hit-rate objective (type buffer, or all); read from the exporter.",
    ),
    FieldDoc("key_types", "list, 1-100", True, "", "The kinds of cached data, one entry each."),
    FieldDoc(
        "key_types[].name",
        "name",
        True,
        "",
        "Value of the type label; lower case, not other, unattributed or all.",
    ),
    FieldDoc("key_types[].prefix", "string", False, "the name", "First key segment (prefix:...)."),
    FieldDoc(
        "key_types[].ttl",
        "duration, 1s-365d",
        True,
        "",
        "TTL set() applies when the caller gives none.",
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
        "ratio (0-1, 6 decimals at most)",
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


def _number(value: Any) -> float | None:
    """``value`` as a finite float, or ``None`` if it is not a finite number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float
        return None
    return number if math.isfinite(number) else None


def _decimals(value: float) -> int:
    """How many decimal places ``value`` was written with (``0.995`` -> 3)."""
    text = repr(value)
    if "e" in text or "E" in text:
        mantissa, _, exponent = text.lower().partition("e")
        places = len(mantissa.partition(".")[2].rstrip("0")) - int(exponent)
        return max(places, 0)
    return len(text.partition(".")[2].rstrip("0"))


def _ratio(
    source: str, where: str, value: Any, low: float = 0.0, what: str = "strictly between 0 and 1"
) -> float:
    number = _number(value)
    if number is None or not low < number < 1 or _decimals(number) > RATIO_DECIMALS:
        raise SLOError(
            source,
            where,
            f"a ratio {what} with at most {RATIO_DECIMALS} decimals (e.g. 0.95)",
            value,
        )
    return number


def _duration(
    source: str,
    where: str,
    value: Any,
    low: timedelta | None = None,
    high: timedelta | None = None,
) -> timedelta:
    try:
        parsed = parse_duration(value)
    except ValueError:
        expected = "a duration such as '10ms', '15m', '24h' or '7d'"
        raise SLOError(source, where, expected, value) from None
    if parsed <= timedelta(0):
        raise SLOError(source, where, "a duration greater than zero", value)
    if (low is not None and parsed < low) or (high is not None and parsed > high):
        bounds = f"between {format_duration(low or parsed)} and {format_duration(high or parsed)}"
        raise SLOError(source, where, f"a duration {bounds}", value)
    return parsed


def _min_read_rate(source: str, value: Any) -> float:
    low, high = MIN_READ_RATE_BOUNDS
    number = _number(value)
    if number is None or not (number == 0 or low <= number <= high):
        raise SLOError(
            source,
            "hit_rate.min_read_rate",
            f"a number of reads per second: 0 (no guard) or from {low:g} to {high:g}",
            value,
        )
    return number


def _mapping(source: str, where: str, value: Any, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        what = "a mapping of fields" if where else "a YAML mapping (version, window, ...)"
        got = "an empty file" if value is None and not where else value
        raise SLOError(source, where or "(document)", what, got)
    unknown = sorted(set(map(str, value)) - allowed)
    if unknown:
        name = shown(unknown[0], 40)
        raise SLOError(
            source,
            f"{where}.{name}" if where else name,
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
    ttl = _duration(source, f"{where}.ttl", _required(source, where, data, "ttl"), MIN_TTL, MAX_TTL)
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
    if type(version) is not int or version not in SUPPORTED_VERSIONS:
        supported = ", ".join(map(str, SUPPORTED_VERSIONS))
        raise SLOError(source, "version", f"a supported format version ({supported})", version)
    window = _duration(
        source, "window", _required(source, "", top, "window"), MIN_WINDOW, MAX_WINDOW
    )

    hit = _mapping(source, "hit_rate", _required(source, "", top, "hit_rate"), _allowed("hit_rate"))
    hit_objective = _ratio(
        source, "hit_rate.objective", _required(source, "hit_rate", hit, "objective")
    )
    min_rate = _min_read_rate(source, hit.get("min_read_rate", 0.1))

    lat = _mapping(source, "latency", _required(source, "", top, "latency"), _allowed("latency"))
    operation = lat.get("operation", "get")
    if not isinstance(operation, str) or operation not in OPERATIONS:
        raise SLOError(source, "latency.operation", f"one of {', '.join(OPERATIONS)}", operation)
    threshold = _bucket_threshold(
        source, "latency.threshold", _required(source, "latency", lat, "threshold"),
        LATENCY_BUCKETS, "cache_latency_seconds",
    )  # fmt: skip
    latency = LatencySLO(
        operation,
        threshold,
        _ratio(
            source,
            "latency.objective",
            _required(source, "latency", lat, "objective"),
            LATENCY_OBJECTIVE_LOW,
            "above 0.5 and below 1",
        ),
    )

    raw_types = _required(source, "", top, "key_types")
    if not isinstance(raw_types, list) or not raw_types or len(raw_types) > MAX_KEY_TYPES:
        raise SLOError(
            source, "key_types", f"a non-empty list of at most {MAX_KEY_TYPES} key types", raw_types
        )
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
    service = _service(source, top.get("service", {}))
    api = _api(source, top["api"]) if "api" in top else None
    layers = _layers(source, top["layers"]) if "layers" in top else {}
    return SLO(
        version, window, hit_objective, min_rate, latency, key_types, source, service, api, layers
    )


def _bucket_threshold(
    source: str, field_path: str, raw: Any, buckets: Sequence[float], histogram: str
) -> timedelta:
    """A latency threshold that is one of ``histogram``'s bucket boundaries, so its SLI
    reads one bucket and interpolates nothing."""
    threshold = _duration(source, field_path, raw)
    if threshold.total_seconds() not in buckets:
        bounds = ", ".join(format_duration(timedelta(seconds=b)) for b in buckets)
        raise SLOError(source, field_path, f"a bucket boundary of {histogram} ({bounds})", raw)
    return threshold


def _api(source: str, raw: Any) -> ApiSLO:
    data = _mapping(source, "api", {} if raw is None else raw, _allowed("api"))
    threshold = DEFAULT_API_THRESHOLD
    if "threshold" in data:
        threshold = _bucket_threshold(
            source, "api.threshold", data["threshold"],
            API_LATENCY_BUCKETS, "api_request_duration_seconds",
        )  # fmt: skip
    objective = DEFAULT_API_OBJECTIVE
    if "objective" in data:
        objective = _ratio(source, "api.objective", data["objective"])
    cached = data.get("cached", DEFAULT_API_CACHED)
    cached = (
        {True: "true", False: "false"}.get(cached, cached) if isinstance(cached, bool) else cached
    )
    if cached not in API_CACHED_CHOICES:
        raise SLOError(source, "api.cached", "true, false or any", data.get("cached"))
    routes = data.get("routes", [])
    if not isinstance(routes, list) or len(routes) > MAX_API_ROUTES:
        expected = f"a list of at most {MAX_API_ROUTES} route templates"
        raise SLOError(source, "api.routes", expected, routes)
    for i, route in enumerate(routes):
        if not isinstance(route, str) or not _ROUTE_RE.match(route):
            raise SLOError(
                source,
                f"api.routes[{i}]",
                "a route template like '/api/users/{user_id}' (letters, digits, / _ . ~ : - { })",
                route,
            )
        if route in routes[:i]:
            raise SLOError(source, f"api.routes[{i}]", "a route not listed before", route)
    return ApiSLO(threshold, objective, cached, tuple(routes))


def _layers(source: str, raw: Any) -> dict[str, dict[str, float]]:
    data = _mapping(source, "layers", raw, _allowed("layers"))
    found: dict[str, dict[str, float]] = {}
    for layer in OBJECTIVE_LAYERS:  # a fixed order, whatever the file's
        if layer not in data:
            continue
        where = f"layers.{layer}"
        types = data[layer]
        if not isinstance(types, dict) or not types or len(types) > MAX_LAYER_TYPES:
            expected = f"a mapping of 1-{MAX_LAYER_TYPES} type: objective pairs (api: 0.9)"
            raise SLOError(source, where, expected, types)
        found[layer] = {}
        for name, objective in types.items():
            if not isinstance(name, str) or not _NAME_RE.match(name):
                raise SLOError(source, where, "type names like 'api' or 'all'", name)
            if layer == LAYER_POSTGRES and name not in (TYPE_POSTGRES_BUFFER, TYPE_ALL):
                raise SLOError(
                    source, f"{where}.{name}", f"type {TYPE_POSTGRES_BUFFER} or {TYPE_ALL}"
                )
            found[layer][name] = _ratio(source, f"{where}.{name}", objective)
    return found


def _matchers(source: str, where: str, raw: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, dict) or not raw or len(raw) > MAX_MATCHERS:
        raise SLOError(
            source, where, f"a mapping of 1-{MAX_MATCHERS} label: value matchers (job: my-app)", raw
        )
    found = []
    for key, value in raw.items():
        if (
            not isinstance(key, str)
            or not _LABEL_NAME_RE.match(key)
            or key in RULE_LABELS
            or key.startswith("__")
        ):
            raise SLOError(
                source, where, "label names (letters, digits, _) the rules do not set", key
            )
        if not isinstance(value, str) or not value or len(value) > 200 or not value.isprintable():
            raise SLOError(source, f"{where}.{key}", "a non-empty printable string", value)
        found.append((key, value))
    return tuple(found)


def _service(source: str, raw: Any) -> Service:
    data = _mapping(source, "service", raw, _allowed("service"))
    name = data.get("name", DEFAULT_SERVICE)
    if not isinstance(name, str) or not _SERVICE_RE.match(name):
        expected = "a lower-case name (a-z, 0-9, . -, ending in a letter or digit) like 'checkout'"
        raise SLOError(source, "service.name", expected, name)
    default = Service()
    app = default.app
    if "app_selector" in data:
        app = _matchers(source, "service.app_selector", data["app_selector"])
    exporter = default.exporter
    if "exporter_selector" in data:
        exporter = _matchers(source, "service.exporter_selector", data["exporter_selector"])
    group_by = data.get("group_by", [])
    if not isinstance(group_by, list) or len(group_by) > MAX_GROUP_LABELS:
        expected = f"a list of at most {MAX_GROUP_LABELS} label names"
        raise SLOError(source, "service.group_by", expected, group_by)
    for i, label in enumerate(group_by):
        if not isinstance(label, str) or not _LABEL_NAME_RE.match(label):
            raise SLOError(source, f"service.group_by[{i}]", "a label name like 'cluster'", label)
        if label in NOT_GROUPING:
            raise SLOError(
                source,
                f"service.group_by[{i}]",
                "a placement label (cluster, namespace, region), not one the rules set or "
                "one per pod",
                label,
            )
        if label in group_by[:i]:
            raise SLOError(source, f"service.group_by[{i}]", "a label not listed before", label)
    runbooks = data.get("runbook_base_url")
    if runbooks is not None and (
        not isinstance(runbooks, str)
        or not RUNBOOK_URL_RE.match(runbooks)
    ):
        raise SLOError(
            source,
            "service.runbook_base_url",
            "an http(s) URL such as https://wiki.example.com/runbooks/",
            runbooks,
        )
    return Service(name, app, exporter, tuple(group_by), runbooks)


class _Refused(Exception):
    """Something the strict loader does not accept, at a line of the file."""

    def __init__(self, line: int, expected: str, got: object = None) -> None:
        super().__init__(expected)
        self.line = line
        self.expected = expected
        self.got = got


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader without anchors and aliases (an alias can multiply a
    small file into gigabytes), nesting deeper than :data:`MAX_DEPTH` (the composer
    recurses once per level) or a field given twice (YAML would keep the last
    silently)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _Refused(line, "no YAML anchors or aliases (&name, *name): write values out")
        if self._depth >= MAX_DEPTH:
            raise _Refused(line, f"at most {MAX_DEPTH} levels of nesting")
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise _Refused(key_node.start_mark.line + 1, "each field once", key)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _yaml_problem(exc: yaml.YAMLError) -> tuple[str, str]:
    """Where and what PyYAML found wrong (its own words, bounded, on one line)."""
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}" if mark is not None else "(file)"
    problem = getattr(exc, "problem", None) or str(exc).partition("\n")[0]
    return where, str(problem or type(exc).__name__)


def _read_text(path: Path, source: str) -> str:
    """The file as text: at most :data:`MAX_FILE_BYTES`, UTF-8."""
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise SLOError(source, "(file)", "a readable SLO file", exc.strerror) from None
    if len(data) > MAX_FILE_BYTES:
        raise SLOError(
            source, "(file)", f"an SLO file of at most {MAX_FILE_BYTES // 1024} KiB", "a larger one"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SLOError(
            source,
            "(file)",
            "UTF-8 text",
            f"byte 0x{data[exc.start]:02x} at offset {exc.start}",
        ) from None


def parse_yaml(text: str, source: str = "<string>") -> Any:
    """Parse SLO YAML with the strict loader; every refusal is an :class:`SLOError`."""
    if len(text) > MAX_FILE_BYTES:
        raise SLOError(
            source, "(file)", f"an SLO file of at most {MAX_FILE_BYTES // 1024} KiB", "a larger one"
        )
    loader = None
    try:
        loader = _StrictLoader(text)  # the reader refuses unprintable characters here
        return loader.get_single_data()
    except _Refused as exc:
        raise SLOError(source, f"line {exc.line}", exc.expected, exc.got) from None
    except yaml.YAMLError as exc:
        where, problem = _yaml_problem(exc)
        raise SLOError(source, where, f"valid YAML ({shown(problem, 120)})") from None
    except (ValueError, OverflowError) as exc:  # a scalar PyYAML could not convert
        # (an integer of more than 4300 digits, a date such as 2024-13-45)
        raise SLOError(source, "(file)", f"valid YAML scalars ({shown(str(exc), 120)})") from None
    finally:
        if loader is not None:
            loader.dispose()


def load_slo(path: str | Path | None = None) -> SLO:
    """Load and validate an SLO file; ``None`` loads the shipped ADR-004 defaults.

    Any problem, however the file is made, is an :class:`SLOError` of one line
    naming the file, the field and what was expected; the file is read at most
    :data:`MAX_FILE_BYTES` far, so time and memory are bounded too.
    """
    if path is None:
        text = default_slo_path().read_text("utf-8")
        source = f"<default {DEFAULT_SLO_NAME}>"
    else:
        source = str(path)
        text = _read_text(Path(path), source)
    return parse_slo(parse_yaml(text, source), source)


def default_slo_path() -> Path:
    """Path of the shipped default SLO file (for ``--slo`` help and docs)."""
    return Path(__file__).parent / "data" / DEFAULT_SLO_NAME


def by_service(slos: Sequence[SLO]) -> dict[str, SLO]:
    """``{service name: its SLO}`` in the files' order; a service two files name is
    refused in one line naming both files (whichever came last would judge it)."""
    found: dict[str, SLO] = {}
    for slo in slos:
        name = slo.service.name
        if name in found:
            raise SLOError(
                slo.source, "service.name",
                f"a name no other SLO file uses (also in {found[name].source})", name,
            )  # fmt: skip
        found[name] = slo
    return found
