"""The aggregated page as display values: texts, states, colours, sparkline geometry.

Formatting lives here, not in the template, so the template only places values
(and autoescapes them) and this module can be tested without HTML.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from exporter import sli
from exporter.slo import SLO, format_duration
from exporter.status.aggregate import SPARK_SECONDS, Page, Row
from exporter.status.queries import BURN_WINDOW, NOW_WINDOW

#: page reload interval (a meta refresh: the page has no script)
REFRESH_SECONDS = 15
BROKEN_COLOUR = "#d92d20"
OK_COLOUR = "#1e7b43"
SPARK_WIDTH = 300
SPARK_HEIGHT = 48
NO_DATA = "no data"


def percent(value: float | None, digits: int = 2) -> str:
    return NO_DATA if value is None else f"{value * 100:.{digits}f} %"


def formatted(value: float | None, spec: str) -> str:
    return NO_DATA if value is None else format(value, spec)


@dataclass(frozen=True)
class Sparkline:
    """An SVG polyline of the SLI with a dashed line at the target (empty: no data)."""

    width: int
    height: int
    points: str = ""
    target_y: str = ""
    last_x: str = ""
    last_y: str = ""
    label: str = ""


def sparkline(points: list[tuple[float, float]], target: float) -> Sparkline:
    width, height = SPARK_WIDTH, SPARK_HEIGHT
    if not points:
        return Sparkline(width, height)
    t0, t1 = points[0][0], points[-1][0]
    values = [v for _, v in points] + [target]
    lo, hi = min(values), max(values)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.01, hi + 0.01

    def x(t: float) -> float:
        return float(width) if t1 == t0 else (t - t0) / (t1 - t0) * width

    def y(v: float) -> float:
        return height - 2 - (v - lo) / (hi - lo) * (height - 4)

    last_t, last_v = points[-1]
    return Sparkline(
        width,
        height,
        points=" ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in points),
        target_y=f"{y(target):.1f}",
        last_x=f"{x(last_t):.1f}",
        last_y=f"{y(last_v):.1f}",
        label=f"last {SPARK_SECONDS // 3600} hours",
    )


@dataclass(frozen=True)
class Card:
    """One objective's card."""

    key: str
    kind: str
    title: str
    broken: bool
    value: str
    target: str
    budget: str
    burn: str
    alert_count: int
    alerts: list[str]  # "name (severity)"
    colour: str
    spark: Sparkline
    #: latency objectives only: the threshold in ms and the current p99
    threshold_ms: str = ""
    p99: str = ""


def card(row: Row, p99: float | None, slo: SLO) -> Card:
    o = row.objective
    latency = o.kind == sli.LATENCY
    return Card(
        key=o.key,
        kind=o.kind,
        title=o.title,
        broken=row.broken,
        value=percent(row.now),
        target=percent(o.target, 1),
        budget=percent(row.budget_left, 1),
        burn=formatted(row.burn_1h, ".2f"),
        alert_count=len(row.alerts),
        alerts=[
            f"{a['labels'].get('alertname', '?')} ({a['labels'].get('severity', '')})"
            for a in row.alerts
        ],
        colour=BROKEN_COLOUR if row.broken else OK_COLOUR,
        spark=sparkline(row.series, o.target),
        threshold_ms=f"{slo.latency.threshold_seconds * 1000:g}" if latency else "",
        p99=(NO_DATA if p99 is None else f"{p99 * 1000:.2f} ms") if latency else "",
    )


def firing_line(alert: dict[str, Any]) -> tuple[str, str]:
    """An alert as its name and its other labels (``k=v, k=v``)."""
    labels = alert["labels"]
    rest = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "alertname")
    return str(labels.get("alertname", "?")), rest


@dataclass(frozen=True)
class PageView:
    """Everything the template places."""

    summary: str
    cards: list[Card]
    slo_source: str
    prometheus: str
    source: str  # "recording rules" or "raw queries"
    firing: list[tuple[str, str]]
    other_types: list[tuple[str, str]]
    failed: list[str]
    spark_hours: int = SPARK_SECONDS // 3600
    now_window: str = NOW_WINDOW
    burn_window: str = BURN_WINDOW
    refresh: int = REFRESH_SECONDS
    window: str = ""


def page_view(page: Page, slo: SLO, prometheus: str) -> PageView:
    broken = sum(row.broken for row in page.rows)
    summary = f"{broken} of {len(page.rows)} objectives broken" if broken else "all objectives met"
    return PageView(
        summary=summary,
        cards=[card(row, page.p99, slo) for row in page.rows],
        slo_source=slo.source,
        prometheus=prometheus,
        source="recording rules" if page.from_recordings else "raw queries",
        firing=[firing_line(a) for a in page.firing],
        other_types=[(name, percent(value)) for name, value in page.other_types.items()],
        failed=page.failed,
        window=format_duration(slo.window),
    )
