"""The page's objectives and every query it sends, built by :mod:`exporter.sli`.

Where Prometheus has the generator's recording rules loaded the page reads them
(the series the alerts and dashboards use; cheap even over a 30-day window);
otherwise it falls back to the same SLIs over raw counters.
"""

from __future__ import annotations

from dataclasses import dataclass

from exporter import metrics as m
from exporter import sli
from exporter.rules.conventions import RECORD_BUDGET_REMAINING, record_hit_ratio
from exporter.slo import SLO, format_duration, parse_duration

#: rate window of the "now" value and the sparklines
NOW_WINDOW = "5m"
#: window of the displayed burn rate (the classic fast-burn long window)
BURN_WINDOW = "1h"
#: the quantile shown beside the latency objective
P99 = "0.99"


@dataclass(frozen=True)
class Objective:
    """One card of the page: an objective of the SLO file and how to title it."""

    key: str  # stable id (the HTML id)
    title: str
    sli: sli.Objective

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
        """The SLI over raw counters and ``window``."""
        return self.sli.raw("", window)

    def recorded(self, window: str) -> str:
        """The generator's recording of this SLI over ``window``."""
        return self.sli.recorded(parse_duration(window))

    def sli_query(self, window: str, recorded: set[str]) -> str:
        """The recording when Prometheus evaluates it, else the raw SLI."""
        if self.sli.record(parse_duration(window)) in recorded:
            return self.recorded(window)
        return self.expr(window)

    def budget_query(self, window: str, recorded: set[str]) -> str:
        """Budget left if recorded, else the window's SLI (:func:`budget_is_recorded`)."""
        if budget_is_recorded(recorded):
            return self.sli.recorded_budget_left()
        return self.sli_query(window, recorded)


def budget_is_recorded(recorded: set[str]) -> bool:
    return RECORD_BUDGET_REMAINING in recorded


def objectives(slo: SLO) -> list[Objective]:
    """The SLO file's objectives, in page order: overall, per type, the other layers, the
    API, latency."""
    rows = []
    for o in sli.objectives(slo):
        if o.kind == sli.LATENCY:
            lat = slo.latency
            title = f"{lat.operation.upper()} within {format_duration(lat.threshold)}"
            rows.append(Objective(f"latency-{o.value}", title, o))
        elif o.kind == sli.API_LATENCY:
            rows.append(Objective("api-latency", o.title, o))
        elif o.kind == sli.LAYER_HIT_RATE:
            rows.append(Objective(f"hit-rate-{o.layer}-{o.value}", o.title, o))
        elif o.value == m.TYPE_ALL:
            rows.append(Objective("hit-rate-all", "Hit rate, all types", o))
        else:
            rows.append(Objective(f"hit-rate-{o.value}", f"Hit rate, {o.value}", o))
    return rows


def p99_expr(slo: SLO) -> str:
    """The latency SLO's operation p99 over :data:`NOW_WINDOW`."""
    return sli.latency_quantile(
        P99, "", NOW_WINDOW, layer=m.LAYER_REDIS, operation=slo.latency.operation
    )


def hit_ratio_by_type(recorded: set[str]) -> str:
    """Every type's hit rate over :data:`NOW_WINDOW` (one series per ``type``)."""
    name = record_hit_ratio(parse_duration(NOW_WINDOW))
    if name in recorded:
        return name
    return sli.hit_ratio("", NOW_WINDOW, layer=m.LAYER_REDIS, by=("type",))
