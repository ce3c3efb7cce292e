"""The page's objectives and every query it sends, built by :mod:`exporter.sli`.

Where Prometheus has the generator's recording rules loaded the page reads them
(the series the alerts and dashboards use; cheap even over a 30-day window);
otherwise it falls back to the same SLIs over raw counters.
"""

from __future__ import annotations

from dataclasses import dataclass

from exporter import metrics as m
from exporter import sli
from exporter.rules.conventions import record_hit_ratio, window_name
from exporter.rules.windows import scaled_tiers, tiers_for_budget
from exporter.slo import SLO, format_duration, parse_duration

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


@dataclass(frozen=True)
class Objective:
    """One card of the page: an objective of the SLO file and how to title it."""

    key: str  # stable id (the HTML id)
    title: str
    sli: sli.Objective
    #: the burn-rate tiers its alerts use (after capping), fastest first
    burns: tuple[BurnWindow, ...] = ()

    @property
    def kind(self) -> str:
        return self.sli.kind

    @property
    def target(self) -> float:
        return self.sli.target

    @property
    def type(self) -> str:
        """The ``type`` label its alerts carry (``all`` for the latency objective too)."""
        return self.sli.value if self.kind == sli.HIT_RATE else m.TYPE_ALL

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


def objectives(slo: SLO) -> list[Objective]:
    """The SLO file's objectives, in page order: overall, per type, latency."""
    rows = []
    tiers = scaled_tiers(slo.window)
    for o in sli.objectives(slo):
        kept, _ = tiers_for_budget(tiers, sli.error_budget(o.target))
        burns = tuple(BurnWindow(window_name(t.long), float(t.factor), t.severity) for t in kept)
        if o.kind == sli.LATENCY:
            lat = slo.latency
            key, title = (
                f"latency-{o.value}",
                f"{lat.operation.upper()} within {format_duration(lat.threshold)}",
            )
        elif o.value == m.TYPE_ALL:
            key, title = "hit-rate-all", "Hit rate, all types"
        else:
            key, title = f"hit-rate-{o.value}", f"Hit rate, {o.value}"
        rows.append(Objective(key, title, o, burns))
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
