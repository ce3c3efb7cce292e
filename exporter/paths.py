"""Path classes of the HTTP layers: which ``type`` a URL path counts under, and the
Cache-Control policy ADR-004 sets for it.

The CDN log collector (:mod:`exporter.collectors.cdn_logs`) and the ASGI
middleware (:mod:`exporter.asgi`) share this table, so a CDN hit and a browser
revalidation of ``/api/...`` land under the same ``type``.  The classes are
data: a short ordered list (first match wins) read from a small YAML file, or
the ADR's defaults below.  Their names are the only ``type`` values the HTTP
layers emit, plus ``other`` for a path that matches none, so the label set is
bounded by this file (at most :data:`MAX_CLASSES` classes).

File format (``version: 1``)::

    version: 1
    classes:
      - name: asset               # the type label value
        suffixes: [.js, .css]     # path ends with one of these (case-insensitive)
        policy: immutable         # immutable | api | html | none
      - name: api
        prefixes: [/api/]         # path starts with one of these
        policy: api
      - name: html
        suffixes: [.html]
        exact: [/]                # path is exactly one of these
        policy: html
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from exporter.metrics import (
    LAYER_BROWSER,
    LAYER_CDN,
    RESERVED_TYPE_NAMES,
    TYPE_ALL,
    TYPE_OTHER,
)

PolicyName = Literal["immutable", "api", "html", "none"]
POLICY_NAMES: tuple[PolicyName, ...] = ("immutable", "api", "html", "none")

#: one year, ADR-004 layer 1 ("expires 1y") and the CDN layer's API TTL (1 hour)
ONE_YEAR = 31_536_000
ONE_HOUR = 3_600
#: request headers an API response varies on (ADR-004 layer 2)
API_VARY = ("authorization", "accept-language")

MAX_CLASSES = 32
MAX_PATTERNS = 64
MAX_FILE_BYTES = 64 * 1024
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class PathClassError(ValueError):
    """A bad path-class file: names the file, the field and what was expected."""


@dataclass(frozen=True)
class Policy:
    """What a class's responses must carry: the header values applied when the
    response has none, and the directives checked when it has its own."""

    name: PolicyName
    cache_control: str | None
    vary: tuple[str, ...] = ()


POLICIES: dict[PolicyName, Policy] = {
    "immutable": Policy("immutable", f"public, max-age={ONE_YEAR}, immutable"),
    "api": Policy("api", f"public, max-age={ONE_HOUR}, s-maxage={ONE_HOUR}", API_VARY),
    "html": Policy("html", "no-cache, no-store, must-revalidate"),
    "none": Policy("none", None),
}


@dataclass(frozen=True)
class PathClass:
    """One class of paths: a name (the ``type`` label), how paths match, its policy."""

    name: str
    prefixes: tuple[str, ...] = ()
    suffixes: tuple[str, ...] = ()
    exact: tuple[str, ...] = ()
    policy: PolicyName = "none"

    def matches(self, path: str) -> bool:
        # str.startswith/endswith take a tuple: one C call per kind of pattern
        return (
            path in self.exact
            or (bool(self.prefixes) and path.startswith(self.prefixes))
            or (bool(self.suffixes) and path.lower().endswith(self.suffixes))
        )


#: ADR-004: hashed static assets (layer 1's nginx extensions), the API, HTML pages
DEFAULT_CLASSES: tuple[PathClass, ...] = (
    PathClass("api", prefixes=("/api/",), policy="api"),
    PathClass(
        "asset",
        suffixes=(".js", ".css", ".png", ".jpg", ".jpeg", ".gif", ".ico", ".svg", ".woff2"),
        policy="immutable",
    ),
    PathClass("html", suffixes=(".html",), exact=("/",), policy="html"),
)


@dataclass(frozen=True)
class PathClasses:
    """The ordered classes; :meth:`classify` gives a path's class name or ``other``."""

    classes: tuple[PathClass, ...] = DEFAULT_CLASSES

    @property
    def types(self) -> tuple[str, ...]:
        """Every ``type`` value the HTTP layers may emit, ``other`` last."""
        return (*(c.name for c in self.classes), TYPE_OTHER)

    def find(self, path: str) -> PathClass | None:
        for path_class in self.classes:
            if path_class.matches(path):
                return path_class
        return None

    def classify(self, path: str) -> str:
        found = self.find(path)
        return found.name if found is not None else TYPE_OTHER


def _strings(where: str, value: Any, must_start: str | None = None) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise PathClassError(f"{where}: expected a list of non-empty strings")
    if len(value) > MAX_PATTERNS:
        raise PathClassError(f"{where}: expected at most {MAX_PATTERNS} entries")
    if must_start and not all(v.startswith(must_start) for v in value):
        raise PathClassError(f"{where}: expected every entry to start with {must_start!r}")
    return tuple(value)


def parse_classes(data: Any, source: str = "<path classes>") -> PathClasses:
    """Validate already-parsed YAML into :class:`PathClasses` (errors name the field)."""
    if not isinstance(data, Mapping) or data.get("version") != 1:
        raise PathClassError(f"{source}: version: expected 1")
    unknown = set(data) - {"version", "classes"}
    if unknown:
        raise PathClassError(f"{source}: {sorted(unknown)[0]}: unknown field")
    raw = data.get("classes")
    if not isinstance(raw, list) or not raw or len(raw) > MAX_CLASSES:
        raise PathClassError(f"{source}: classes: expected a list of 1 to {MAX_CLASSES} classes")
    found: list[PathClass] = []
    for index, item in enumerate(raw):
        where = f"{source}: classes[{index}]"
        if not isinstance(item, Mapping):
            raise PathClassError(f"{where}: expected a mapping")
        extra = set(item) - {"name", "prefixes", "suffixes", "exact", "policy"}
        if extra:
            raise PathClassError(f"{where}.{sorted(map(str, extra))[0]}: unknown field")
        name = item.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise PathClassError(f"{where}.name: expected [a-z][a-z0-9_]*, up to 40 characters")
        if name in RESERVED_TYPE_NAMES or name in (c.name for c in found):
            raise PathClassError(f"{where}.name: {name!r} is reserved or used twice")
        policy = item.get("policy", "none")
        if policy not in POLICY_NAMES:
            raise PathClassError(f"{where}.policy: expected one of {', '.join(POLICY_NAMES)}")
        path_class = PathClass(
            name,
            prefixes=_strings(f"{where}.prefixes", item.get("prefixes"), "/"),
            suffixes=tuple(s.lower() for s in _strings(f"{where}.suffixes", item.get("suffixes"))),
            exact=_strings(f"{where}.exact", item.get("exact"), "/"),
            policy=policy,
        )
        if not (path_class.prefixes or path_class.suffixes or path_class.exact):
            raise PathClassError(f"{where}: expected at least one of prefixes, suffixes, exact")
        found.append(path_class)
    return PathClasses(tuple(found))


def load_classes(path: Path | str | None = None) -> PathClasses:
    """The classes of a YAML file (at most 64 KiB, safe loader), or the ADR defaults."""
    if path is None:
        return PathClasses()
    source = str(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise PathClassError(f"{source}: cannot read ({exc.strerror})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise PathClassError(f"{source}: expected at most {MAX_FILE_BYTES} bytes")
    try:
        data = yaml.safe_load(raw.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise PathClassError(f"{source}: expected UTF-8 YAML ({type(exc).__name__})") from None
    return parse_classes(data, source)


# --- checking an SLO file's layer objectives against the classes ---------------------


#: the layers whose ``type`` is a path class
HTTP_LAYERS = (LAYER_CDN, LAYER_BROWSER)


def unknown_layer_types(
    source: str, layers: Mapping[str, Mapping[str, float]], classes: PathClasses
) -> list[str]:
    """One line (file, field, expected) for each CDN or browser objective whose type no
    reader of these classes emits: such an objective would have no data for ever."""
    known = (*classes.types, TYPE_ALL)
    expected = f"a path class ({', '.join(classes.types)}) or {TYPE_ALL}"
    return [
        f"{source}: layers.{layer}.{type_}: expected {expected}; no CDN log or middleware "
        "counts this type, so the objective would never have data"
        for layer in HTTP_LAYERS
        for type_ in layers.get(layer, {})
        if type_ not in known
    ]


#: ``--path-classes``' help in check-slo and generate (serve has its own flag)
PATH_CLASSES_HELP = (
    "the path classes serve and the app use (YAML, as serve --path-classes): the SLO file's "
    "cdn/browser layer types must be among them (refused otherwise); without it they are "
    "compared with the ADR's classes and a mismatch is a warning"
)


def check_layer_types(
    source: str, layers: Mapping[str, Mapping[str, float]], classes_file: str | None
) -> tuple[list[str], bool]:
    """(lines to print, refused) for ``check-slo`` and ``generate``.

    Without ``classes_file`` the types are compared with the ADR's default classes and
    a mismatch is a warning: serve and the app may be given classes of their own, which
    the SLO file does not name.  With it, the classes serve and the app do use, and a
    mismatch is refused: the objective could never have data.  A bad classes file is
    refused with its own one-line error."""
    try:
        classes = load_classes(classes_file)
    except PathClassError as exc:
        return [f"error: {exc}"], True
    problems = unknown_layer_types(source, layers, classes)
    level = "warning" if classes_file is None else "error"
    return [f"{level}: {line}" for line in problems], classes_file is not None and bool(problems)


# --- checking a response against its class's policy ---------------------------------


def directives(cache_control: str) -> dict[str, str]:
    """``Cache-Control`` directives, lower-cased names -> value ('' when bare)."""
    found: dict[str, str] = {}
    for part in cache_control.split(","):
        name, _, value = part.strip().partition("=")
        if name:
            found.setdefault(name.strip().lower(), value.strip().strip('"'))
    return found


def _seconds(value: str | None) -> int | None:
    if value is None or not value.isdigit() or len(value) > 12:
        return None
    return int(value)


def violations(policy: Policy, cache_control: str | None, vary: str | None) -> list[str]:
    """The rules (``exporter.metrics.POLICY_RULES``) a response's headers break."""
    if policy.cache_control is None:
        return []
    if cache_control is None:
        return ["missing"]
    found = directives(cache_control)
    broken: list[str] = []
    if policy.name == "html":
        if "no-cache" not in found and "no-store" not in found:
            broken.append("no_cache")
        return broken
    if "public" not in found:
        broken.append("public")
    max_age = _seconds(found.get("max-age"))
    if policy.name == "immutable":
        if max_age is None or max_age < ONE_YEAR:
            broken.append("max_age")
        if "immutable" not in found:
            broken.append("immutable")
    elif policy.name == "api":
        if max_age != ONE_HOUR:
            broken.append("max_age")
        if _seconds(found.get("s-maxage")) != ONE_HOUR:
            broken.append("s_maxage")
        have = _vary_names([vary] if vary else [])
        if not set(policy.vary) <= have:
            broken.append("vary")
    return broken


def _vary_names(values: Iterable[str]) -> set[str]:
    return {name.strip().lower() for value in values for name in value.split(",") if name.strip()}
