"""The page's objectives and every query it sends, built by :mod:`exporter.sli`.

Where Prometheus has the generator's recording rules loaded the page reads them
(the series the alerts and dashboards use; cheap even over a 30-day window);
otherwise it falls back to the same SLIs over raw counters.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from exporter import metrics as m
from exporter import sli
from exporter.rules.conventions import record_hit_ratio, window_name
from exporter.rules.windows import scaled_tiers, tiers_for_budget
from exporter.slo import SLO, format_duration, parse_duration
from exporter.slo import by_service as slo_by_service

#: rate window of the "now" value and the sparklines
NOW_WINDOW = "5m"
#: the quantile shown beside the latency objective
P99 = "0.99"


@dataclass(frozen=True)
class BurnWindow:
    """A burn-rate alert tier of one objective: its long window and when it fires."""

    window: str  # the tier's long window, as named in the alert's ``long_window`` label
    factor: float  # the alert fires above this burn rate (over both of its windows)
    severity: str


#: what ``?service=`` and a grouping label's ``?cluster=`` may be: the SLO file's
#: alphabet for service names, and a conservative one for placement values
SERVICE_VALUE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")
GROUP_VALUE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}")


class SelectionError(ValueError):
    """A ``?service=`` or grouping-label value the page refuses (one line, cleaned)."""


def by_service(slos: SLO | Sequence[SLO]) -> dict[str, SLO]:
    """``{service name: its SLO}`` in the files' order (the first is the page's default);
    a service two files name is refused (:class:`~exporter.slo.SLOError`)."""
    found = slo_by_service((slos,) if isinstance(slos, SLO) else slos)
    if not found:
        raise ValueError("the status page needs at least one SLO file")
    return found


def choose(slos: Mapping[str, SLO], params: Mapping[str, str]) -> tuple[SLO, Selection]:
    """The SLO file and selection a request asks for: ``?service=`` (default: the first
    file's service) judged by its own file only, and ``?<group label>=`` for each of that
    file's ``group_by`` labels (others ignored).  A service no file defines is refused:
    another service's objectives would judge it."""
    service = params.get("service") or next(iter(slos))
    if not SERVICE_VALUE.fullmatch(service):
        raise SelectionError(
            f"service: expected a lower-case name (a-z, 0-9, _ . -), got {service[:60]!r}"
        )
    slo = slos.get(service)
    if slo is None:
        raise SelectionError(
            f"service: expected one of the services this page has an SLO file for "
            f"({', '.join(slos)}), got {service!r}; to judge it, add its file with --slo"
        )
    return slo, _groups(slo, service, params)


@dataclass(frozen=True)
class Selection:
    """Which service's series the page reads, narrowed by grouping labels."""

    service: str
    #: grouping label -> value (only the SLO file's ``group_by`` labels)
    groups: tuple[tuple[str, str], ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        """Whether an alert with ``labels`` is about this selection (a label it does
        not carry does not exclude it: older rules had no ``service``)."""
        wanted = (("service", self.service), *self.groups)
        return all(labels.get(k, v) == v for k, v in wanted)


def selection(slo: SLO, params: Mapping[str, str]) -> Selection:
    """:func:`choose` with one SLO file."""
    return choose(by_service(slo), params)[1]


def _groups(slo: SLO, service: str, params: Mapping[str, str]) -> Selection:
    groups = []
    for label in slo.service.group_by:
        value = params.get(label)
        if not value:
            continue
        if not GROUP_VALUE.fullmatch(value):
            raise SelectionError(
                f"{label}: expected letters, digits and _ . : / -, got {value[:60]!r}"
            )
        groups.append((label, value))
    return Selection(service, tuple(groups))


@dataclass(frozen=True)
class Objective:
    """One card of the page: an objective of the SLO file and how to title it."""

    key: str  # stable id (the HTML id)
    title: str
    sli: sli.Objective
    #: the burn-rate tiers its alerts use (after capping), fastest first
    burns: tuple[BurnWindow, ...] = ()
    #: grouping-label matchers narrowing its recorded series (``cluster="eu-1"``)
    groups: tuple[tuple[str, str], ...] = field(default=())
    #: the SLO file's placement labels (``group_by``)
    group_by: tuple[str, ...] = ()
    #: the SLO file's selector of the raw series (the app's, or the exporter's for the
    #: layers it reads), as the recording rules select them
    scope: str = ""

    @property
    def kind(self) -> str:
        return self.sli.kind

    @property
    def target(self) -> float:
        return self.sli.target

    @property
    def type(self) -> str:
        """The ``type`` label its alerts carry (``all`` for the latency objectives too)."""
        return self.sli.value if self.kind in (sli.HIT_RATE, sli.LAYER_HIT_RATE) else m.TYPE_ALL

    @property
    def operation(self) -> str:
        """The ``operation`` label its alerts carry (latency objectives only)."""
        return self.sli.value if self.kind == sli.LATENCY else ""

    def expr(self, window: str) -> str:
        """The SLI over raw counters and ``window``, of this service's own series."""
        return self.sli.raw(self.scope, window)

    def recorded(self, window: str) -> str:
        """The generator's recording of this SLI over ``window``: of the chosen placement,
        or the worst placement when one of the ``group_by`` labels is not chosen."""
        expr = self.sli.recorded(parse_duration(window), **dict(self.groups))
        chosen = dict(self.groups)
        if any(label not in chosen for label in self.group_by):
            return sli.worst_of(expr)
        return expr

    def sli_query(self, window: str, recorded: set[str]) -> str:
        """The recording when Prometheus evaluates it, else the raw SLI."""
        if self.sli.record(parse_duration(window)) in recorded:
            return self.recorded(window)
        return self.expr(window)


def objectives(slo: SLO, chosen: Selection | None = None) -> list[Objective]:
    """The SLO file's objectives, in page order: overall, per type, the other layers, the
    API, latency; their series those of ``chosen`` (default: the file's own service)."""
    rows = []
    tiers = scaled_tiers(slo.window)
    chosen = chosen or Selection(slo.service.name)
    for o in sli.objectives(slo):
        o = replace(o, service=chosen.service)
        kept, _ = tiers_for_budget(tiers, sli.error_budget(o.target))
        burns = tuple(BurnWindow(window_name(t.long), float(t.factor), t.severity) for t in kept)
        if o.kind == sli.LATENCY:
            lat = slo.latency
            key, title = (
                f"latency-{o.value}",
                f"{lat.operation.upper()} within {format_duration(lat.threshold)}",
            )
        elif o.kind == sli.API_LATENCY:
            key, title = "api-latency", o.title
        elif o.kind == sli.LAYER_HIT_RATE:
            key, title = f"hit-rate-{o.layer}-{o.value}", o.title
        elif o.value == m.TYPE_ALL:
            key, title = "hit-rate-all", "Hit rate, all types"
        else:
            key, title = f"hit-rate-{o.value}", f"Hit rate, {o.value}"
        scope = raw_scope(slo, o.layer)
        rows.append(Objective(key, title, o, burns, chosen.groups, slo.service.group_by, scope))
    return rows


def raw_scope(slo: SLO, layer: str = "") -> str:
    """The SLO file's selector of a layer's raw counters, as the rules choose it: the
    exporter's for the layers it reads (CDN logs, PostgreSQL), else the application's."""
    if layer in (m.LAYER_CDN, m.LAYER_POSTGRES):
        return slo.service.exporter_selector
    return slo.service.app_selector


def p99_expr(slo: SLO) -> str:
    """The latency SLO's operation p99 over :data:`NOW_WINDOW`, of the service's app."""
    return sli.latency_quantile(
        P99, raw_scope(slo), NOW_WINDOW, layer=m.LAYER_REDIS, operation=slo.latency.operation
    )


def hit_ratio_by_type(recorded: set[str], chosen: Selection | None = None, scope: str = "") -> str:
    """Every type's hit rate over :data:`NOW_WINDOW` (one series per ``type``), of the
    chosen service when recorded, else over the raw series ``scope`` selects."""
    name = record_hit_ratio(parse_duration(NOW_WINDOW))
    if name in recorded:
        if chosen is None:
            return sli.recorded(name)
        return sli.recorded(name, service=chosen.service, **dict(chosen.groups))
    return sli.hit_ratio(scope, NOW_WINDOW, layer=m.LAYER_REDIS, by=("type",))


#: the series whose ``service`` values the page offers to switch to
SERVICES_FROM = record_hit_ratio(parse_duration(NOW_WINDOW))
