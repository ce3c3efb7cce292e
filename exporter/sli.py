"""Every SLI and error-budget expression, written once.

The recording rules, the alerts, the dashboards and the status page all ask
this module for their hit-ratio, latency, burn-rate and budget PromQL, so the
SLI the page shows is the SLI the alerts fire on.  Metric names come from
:mod:`exporter.metrics`, recorded-series names from
:mod:`exporter.rules.conventions`.  Callers choose only what differs between
them: their own matchers (``scope``: a job selector, Grafana variables or
nothing), the range (``5m``, ``$__rate_interval``), the ``by`` labels and how
a ratio is laid out (``\\n/\\n`` in rule files, `` / `` on one line elsewhere).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from prometheus_client.utils import floatToGoString

from exporter import metrics as m
from exporter.rules import conventions as c
from exporter.rules.model import decimal, number
from exporter.slo import SLO, format_duration

#: SLI kinds: the share of Redis reads answered by the cache, the share of Redis calls
#: within the threshold, the share of another layer's reads answered by it (CDN, browser,
#: PostgreSQL: its series carry ``layer``), the share of API requests within the threshold
HIT_RATE = "hit_rate"
LATENCY = "latency"
LAYER_HIT_RATE = "layer_hit_rate"
API_LATENCY = "api_latency"


@dataclass(frozen=True)
class Layout:
    """How the top-level operator of a ratio or a sum is written."""

    div: str = " / "
    plus: str = " + "


#: one line, as dashboards and the status page write PromQL
INLINE = Layout()
#: one operator per line, as the rule files show it (literal YAML blocks)
LINES = Layout("\n/\n", "\n+\n")


# --- series selectors -------------------------------------------------------------


def selector(spec: m.MetricSpec, scope: str = "", *, suffix: str = "", **labels: str) -> str:
    """``name{scope, label="value", ...}``, refusing a label the metric does not have."""
    for name in labels:
        if name not in spec.labels and not (name == "le" and suffix == "_bucket"):
            raise ValueError(f"{spec.name} has no label {name!r} (labels: {spec.labels})")
    matchers = [scope] if scope else []
    matchers += [f'{k}="{v}"' for k, v in labels.items()]
    return f"{spec.name}{suffix}{{{', '.join(matchers)}}}"


def recorded(name: str, **labels: str) -> str:
    """A recorded series with equality matchers: ``name{type="session"}``."""
    matchers = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return f"{name}{{{matchers}}}"


def le_value(seconds: float) -> str:
    """The ``le`` label exactly as prometheus-client writes it (``0.01``)."""
    return str(floatToGoString(seconds))  # type: ignore[no-untyped-call]


def sum_rate(series: str, rng: str, by: Sequence[str] = ()) -> str:
    """``sum by (type) (rate(series[rng]))``, or ``sum(rate(...))`` without ``by``."""
    inner = f"rate({series}[{rng}])"
    return f"sum by ({', '.join(by)}) ({inner})" if by else f"sum({inner})"


def sum_increase(series: str, rng: str, by: Sequence[str] = ()) -> str:
    """``sum by (type) (increase(series[rng]))``: events counted over ``rng``."""
    inner = f"increase({series}[{rng}])"
    return f"sum by ({', '.join(by)}) ({inner})" if by else f"sum({inner})"


# --- hit ratio ----------------------------------------------------------------------


def _labels(**labels: str | None) -> dict[str, str]:
    """The matchers given, in order, without the ``None`` ones."""
    return {k: v for k, v in labels.items() if v is not None}


def _hits_misses(
    scope: str,
    rng: str,
    by: Sequence[str],
    pair: tuple[m.MetricSpec, m.MetricSpec],
    labels: dict[str, str],
) -> tuple[str, str]:
    hits, misses = pair
    return (
        sum_rate(selector(hits, scope, **labels), rng, by),
        sum_rate(selector(misses, scope, **labels), rng, by),
    )


def hits(scope: str, rng: str, *, layer: str, by: Sequence[str] = ()) -> str:
    """Hits per second (the numerator the long windows sum over time)."""
    return sum_rate(selector(m.CACHE_HITS, scope, layer=layer), rng, by)


def reads(
    scope: str,
    rng: str,
    *,
    layer: str,
    type_: str | None = None,
    by: Sequence[str] = (),
    layout: Layout = INLINE,
) -> str:
    """Reads per second: hits + misses."""
    labels = _labels(layer=layer, type=type_)
    h, mi = _hits_misses(scope, rng, by, (m.CACHE_HITS, m.CACHE_MISSES), labels)
    return f"{h}{layout.plus}{mi}"


def hit_ratio(
    scope: str,
    rng: str,
    *,
    layer: str | None,
    type_: str | None = None,
    by: Sequence[str] = (),
    layout: Layout = INLINE,
    counters: tuple[m.MetricSpec, m.MetricSpec] = (m.CACHE_HITS, m.CACHE_MISSES),
) -> str:
    """Hits / (hits + misses) over raw counters: the client's ``cache_*`` ones by
    default, or another pair (Redis' keyspace counters, which have no ``layer``)."""
    labels = _labels(layer=layer, type=type_)
    h, mi = _hits_misses(scope, rng, by, counters, labels)
    return f"{h}{layout.div}({h} + {mi})"


# --- latency ------------------------------------------------------------------------


def calls(
    scope: str,
    rng: str,
    *,
    layer: str,
    operation: str | None = None,
    by: Sequence[str] = ("operation",),
) -> str:
    """Calls per second (the latency histogram's count)."""
    labels = _labels(layer=layer, operation=operation)
    return sum_rate(selector(m.CACHE_LATENCY, scope, suffix="_count", **labels), rng, by)


def latency_good(
    scope: str,
    rng: str,
    *,
    operation: str,
    threshold_seconds: float,
    by: Sequence[str] = ("operation",),
    layer: str = m.LAYER_REDIS,
) -> str:
    """Calls per second within the threshold (the threshold's bucket)."""
    good = selector(
        m.CACHE_LATENCY,
        scope,
        suffix="_bucket",
        layer=layer,
        operation=operation,
        le=le_value(threshold_seconds),
    )
    return sum_rate(good, rng, by)


def latency_good_ratio(
    scope: str,
    rng: str,
    *,
    operation: str,
    threshold_seconds: float,
    by: Sequence[str] = ("operation",),
    layout: Layout = INLINE,
    layer: str = m.LAYER_REDIS,
) -> str:
    """Share of calls within the threshold: the threshold's bucket over the count (the
    threshold is a bucket boundary, so nothing is interpolated)."""
    good = latency_good(
        scope, rng, operation=operation, threshold_seconds=threshold_seconds, by=by, layer=layer
    )
    total = calls(scope, rng, by=by, layer=layer, operation=operation)
    return f"{good}{layout.div}{total}"


def latency_quantile(
    quantile: str, scope: str, rng: str, *, layer: str, operation: str, by: Sequence[str] = ()
) -> str:
    """``histogram_quantile`` of the latency histogram (``le`` is always grouped by)."""
    buckets = selector(m.CACHE_LATENCY, scope, suffix="_bucket", layer=layer, operation=operation)
    return f"histogram_quantile({quantile}, {sum_rate(buckets, rng, ('le', *by))})"


# --- the API objective (api_request_duration_seconds, exporter.asgi) ---------------------

#: characters of a route template (exporter.slo's alphabet) that mean something in a regex
_REGEX_META = re.compile(r"([.{}])")


def route_regex(routes: Sequence[str]) -> str:
    """Route templates as one PromQL regex string (``\\.`` escapes, as in ``"..."``)."""
    return "|".join(_REGEX_META.sub(r"\\\\\1", r) for r in routes)


def api_selector(
    scope: str, *, suffix: str, cached: str, routes: Sequence[str] = (), le: str | None = None
) -> str:
    """The API histogram's series the objective counts: ``cached`` (``any``: all), the
    listed routes (none: every matched route, never ``unmatched``), and a bucket."""
    matchers = [scope] if scope else []
    if cached != "any":
        matchers.append(f'cached="{cached}"')
    if routes:
        matchers.append(f'route=~"{route_regex(routes)}"')
    else:
        matchers.append(f'route!="{m.ROUTE_UNMATCHED}"')
    if le is not None:
        matchers.append(f'le="{le}"')
    return f"{m.API_LATENCY.name}{suffix}{{{', '.join(matchers)}}}"


def api_requests(
    scope: str, rng: str, *, cached: str, routes: Sequence[str] = (), by: Sequence[str] = ()
) -> str:
    """Requests per second the API objective counts (the histogram's count)."""
    return sum_rate(api_selector(scope, suffix="_count", cached=cached, routes=routes), rng, by)


def api_good(
    scope: str,
    rng: str,
    *,
    threshold_seconds: float,
    cached: str,
    routes: Sequence[str] = (),
    by: Sequence[str] = (),
) -> str:
    """Requests per second within the threshold (the threshold's bucket)."""
    good = api_selector(
        scope, suffix="_bucket", cached=cached, routes=routes, le=le_value(threshold_seconds)
    )
    return sum_rate(good, rng, by)


def api_good_ratio(
    scope: str,
    rng: str,
    *,
    threshold_seconds: float,
    cached: str,
    routes: Sequence[str] = (),
    by: Sequence[str] = (),
    layout: Layout = INLINE,
) -> str:
    """Share of the API's requests within the threshold: bucket over count (the
    threshold is a bucket boundary, so nothing is interpolated)."""
    good = api_good(
        scope, rng, threshold_seconds=threshold_seconds, cached=cached, routes=routes, by=by
    )
    total = api_requests(scope, rng, cached=cached, routes=routes, by=by)
    return f"{good}{layout.div}{total}"


# --- client errors --------------------------------------------------------------------


def call_attempts(
    scope: str, rng: str, *, layer: str = m.LAYER_REDIS, by: Sequence[str] = ("operation",)
) -> str:
    """Calls that reached Redis plus calls the open circuit breaker skipped.

    Skipped calls are only counted as ``circuit_open`` errors; without them a total
    outage reads as a few probes (above 100 % failing, or under the traffic guard).
    """
    reached = calls(scope, rng, layer=layer, by=by)
    skipped = sum_rate(
        selector(m.CACHE_ERRORS, scope, layer=layer, error=c.ERROR_CIRCUIT_OPEN), rng, by
    )
    return f"({reached}\n + ({skipped} or {reached} * 0))"


def client_error_ratio(
    scope: str, rng: str, *, layer: str = m.LAYER_REDIS, by: Sequence[str] = ("operation",)
) -> str:
    """Failed calls over attempted calls, by operation."""
    errors = sum_rate(selector(m.CACHE_ERRORS, scope, layer=layer), rng, by)
    return f"{errors}\n/\n{call_attempts(scope, rng, layer=layer, by=by)}"


# --- recorded SLIs ----------------------------------------------------------------------


def recorded_budget_left(slo_label: str, **labels: str) -> str:
    """The recorded error budget left of one objective."""
    return recorded(c.RECORD_BUDGET_REMAINING, slo=slo_label, **labels)


# --- long windows from recorded short ones ------------------------------------------------
#
# A 30-day rate() over raw counters reads every sample of every pod for 30 days at
# every evaluation.  The long windows instead add up the recorded 5-minute rates
# (one series per type, whatever the number of pods): the sum of hits-per-second
# samples over the sum of reads-per-second samples is total hits over total reads,
# so a busy hour weighs as much as its traffic, as a ratio of increases would.


def ratio_over_time(numerator: str, denominator: str, rng: str, layout: Layout = INLINE) -> str:
    """``sum_over_time(num[rng]) / sum_over_time(den[rng])``: a traffic-weighted ratio."""
    return f"sum_over_time({numerator}[{rng}]){layout.div}sum_over_time({denominator}[{rng}])"


def worst_of(sli: str) -> str:
    """The lowest of an SLI's series (one per placement): where no placement is chosen,
    a broken cluster must not hide behind a healthy one."""
    return f"min({sli})"


def ratio_of(numerator: str, denominator: str, layout: Layout = INLINE) -> str:
    """One recorded rate over another with the same labels (hits over reads)."""
    return f"{numerator}{layout.div}{denominator}"


def rate_over_time(per_second: str, rng: str) -> str:
    """The mean of a recorded per-second rate over ``rng``: the rate over ``rng``."""
    return f"avg_over_time({per_second}[{rng}])"


# --- error budget ---------------------------------------------------------------------


def error_budget(objective: float) -> Decimal:
    """The share of bad events the objective allows (``0.95`` -> ``0.05``, exactly)."""
    return 1 - decimal(objective)


def error_ratio(sli: str) -> str:
    """The bad share of an SLI expression."""
    return f"(1 - {sli})"


def burn_rate(sli: str, objective: float) -> str:
    """How many times faster than sustainable the budget is spent (1 = exactly)."""
    return f"{error_ratio(sli)} / {number(error_budget(objective))}"


def budget_left(sli: str, objective: float) -> str:
    """Budget not yet spent when ``sli`` covers the SLO window (1 untouched, < 0 overspent)."""
    return f"1 - {burn_rate(sli, objective)}"


def burn_rate_value(sli: float, objective: float) -> float:
    """:func:`burn_rate` for a number already read."""
    return (1.0 - sli) / (1.0 - objective)


def budget_left_value(sli: float, objective: float) -> float:
    """:func:`budget_left` for a number already read."""
    return 1.0 - burn_rate_value(sli, objective)


# --- the objectives ---------------------------------------------------------------------


@dataclass(frozen=True)
class Objective:
    """One objective of the SLO file and the series that measure it."""

    kind: str  # HIT_RATE, LATENCY, LAYER_HIT_RATE or API_LATENCY
    #: the label that tells its series and alerts apart (``type``, ``operation``, or
    #: ``cached`` for the API objective: ``true``, ``false`` or ``any``)
    label: str
    value: str  # that label's value
    target: float
    slo_label: str  # the ``slo`` label of its budget recording and burn-rate alerts
    threshold_seconds: float = 0.0  # latency objectives only
    #: the ``service`` label its recordings carry ("" selects every service)
    service: str = ""
    #: LAYER_HIT_RATE only: the layer (``cdn``, ``browser``, ``postgres``)
    layer: str = ""
    #: API_LATENCY only: the route templates it covers (none: every matched route)
    routes: tuple[str, ...] = ()

    @property
    def title(self) -> str:
        """What it measures, for people: ``CDN hit rate, api``."""
        if self.kind == LATENCY:
            return f"{self.value.upper()} within {format_duration(self.threshold)}"
        if self.kind == API_LATENCY:
            which = {"true": " (cached)", "false": " (not cached)"}.get(self.value, "")
            return f"API requests{which} within {format_duration(self.threshold)}"
        what = "all types" if self.value == m.TYPE_ALL else self.value
        if not self.layer:
            return f"Hit rate, {what}"
        layer = "CDN" if self.layer == m.LAYER_CDN else self.layer.capitalize()
        return f"{layer} hit rate, {what}"

    @property
    def threshold(self) -> timedelta:
        return timedelta(seconds=self.threshold_seconds)

    def record(self, window: timedelta) -> str:
        """The name of the generator's recording of this SLI over ``window``."""
        return {
            HIT_RATE: c.record_hit_ratio,
            LATENCY: c.record_latency_good,
            LAYER_HIT_RATE: c.record_layer_hit_ratio,
            API_LATENCY: c.record_api_good_ratio,
        }[self.kind](window)

    def _matchers(self, **extra: str) -> dict[str, str]:
        service = {"service": self.service} if self.service else {}
        layer = {"layer": self.layer} if self.layer else {}
        return {**service, **layer, self.label: self.value, **extra}

    def recorded(self, window: timedelta, **extra: str) -> str:
        """The generator's recording of this SLI over ``window``, this objective's series
        (``extra`` matchers narrow it further: ``cluster="eu-1"``)."""
        return recorded(self.record(window), **self._matchers(**extra))

    def recorded_volume(self, window: timedelta, **extra: str) -> str:
        """Its recorded reads or calls per second (the low-traffic guard)."""
        name = {
            HIT_RATE: c.record_reads,
            LATENCY: c.record_calls,
            LAYER_HIT_RATE: c.record_layer_reads,
            API_LATENCY: c.record_api_requests,
        }[self.kind](window)
        return recorded(name, **self._matchers(**extra))

    def recorded_budget_left(self, **extra: str) -> str:
        return recorded(c.RECORD_BUDGET_REMAINING, slo=self.slo_label, **self._matchers(**extra))

    def raw(self, scope: str, rng: str) -> str:
        """The SLI over raw counters, for a Prometheus without the recording rules."""
        if self.kind in (HIT_RATE, LAYER_HIT_RATE):
            type_ = None if self.value == m.TYPE_ALL else self.value
            return hit_ratio(scope, rng, layer=self.layer or m.LAYER_REDIS, type_=type_)
        if self.kind == API_LATENCY:
            return api_good_ratio(
                scope,
                rng,
                threshold_seconds=self.threshold_seconds,
                cached=self.value,
                routes=self.routes,
            )
        return latency_good_ratio(
            scope, rng, operation=self.value, threshold_seconds=self.threshold_seconds, by=()
        )


def objectives(slo: SLO) -> tuple[Objective, ...]:
    """Overall hit rate, each key type's hit rate (SLO file order), the other layers' hit
    rates (cdn, browser, postgres), the API objective, then Redis latency (last)."""
    service = slo.service.name
    rows = [
        Objective(HIT_RATE, "type", t, target, c.SLO_HIT_RATE, service=service)
        for t, target in slo.objectives.items()
    ]
    rows += [
        Objective(
            LAYER_HIT_RATE, "type", t, target, c.SLO_LAYER_HIT_RATE, service=service, layer=layer
        )
        for layer, types in slo.layers.items()
        for t, target in types.items()
    ]
    if slo.api is not None:
        api = slo.api
        rows.append(
            Objective(
                API_LATENCY, "cached", api.cached, api.objective, c.SLO_API_LATENCY,
                api.threshold_seconds, service, routes=api.routes,
            )
        )  # fmt: skip
    lat = slo.latency
    rows.append(
        Objective(
            LATENCY, "operation", lat.operation, lat.objective, c.SLO_LATENCY,
            lat.threshold_seconds, service,
        )
    )  # fmt: skip
    return tuple(rows)
