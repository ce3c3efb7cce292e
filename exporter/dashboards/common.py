"""Shared pieces of the dashboards: template variables, panel helpers, stable UIDs.

Every query names its metric through :mod:`exporter.metrics` or
:mod:`exporter.rules.conventions` (SLI, budget and burn-rate queries through
:mod:`exporter.sli`), and every threshold comes from the SLO file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from grafanalib import core as g

from exporter.metrics import MetricSpec

DATASOURCE = "${datasource}"
#: panel selector for the template variables (job and instance)
TARGET = 'job=~"$job", instance=~"$instance"'
JOB_ONLY = 'job=~"$job"'
#: where the instance variable's values come from by default: the scrape targets
#: (the app's address for client series, the exporter's for its per-type series)
INSTANCE_FROM_TARGETS = "up"
RATE = "$__rate_interval"
PANEL_HEIGHT = 8


def uid_for(title: str) -> str:
    """A stable UID derived from the dashboard's name (Grafana allows 40 chars)."""
    slug = "".join(ch if ch.isalnum() else "-" for ch in title.lower()).strip("-")
    digest = hashlib.sha256(title.encode()).hexdigest()[:8]
    return f"{slug[:31]}-{digest}"


def templating(instance_from: str = INSTANCE_FROM_TARGETS) -> g.Templating:
    """Datasource, job and instance variables (multi-value, "All" by default).

    ``instance_from`` is the metric whose ``instance`` values the panels filter on:
    ``redis_*`` series carry the Redis address (the exporter's job honours its
    labels), which ``up`` never lists.
    """
    return g.Templating(
        [
            g.Template(name="datasource", label="Data source", query="prometheus",
                       type="datasource"),
            g.Template(name="job", label="Job", query="label_values(up, job)",
                       dataSource=DATASOURCE, includeAll=True, multi=True, allValue=".*",
                       default="$__all"),
            g.Template(name="instance", label="Instance",
                       query=f'label_values({instance_from}{{job=~"$job"}}, instance)',
                       dataSource=DATASOURCE, includeAll=True, multi=True, allValue=".*",
                       default="$__all"),
        ]
    )  # fmt: skip


def sel(
    spec: MetricSpec | str, extra: str = "", *, suffix: str = "", by_instance: bool = True
) -> str:
    """``name{job=~"$job", instance=~"$instance", extra}`` (without the instance
    filter when the series' ``instance`` is not the kind the variable lists)."""
    name = (spec if isinstance(spec, str) else spec.name) + suffix
    inner = ", ".join(x for x in (TARGET if by_instance else JOB_ONLY, extra) if x)
    return f"{name}{{{inner}}}"


def target(expr: str, legend: str = "", ref: str = "A") -> g.Target:
    return g.Target(expr=expr, legendFormat=legend, refId=ref, datasource=DATASOURCE)


def targets(*pairs: tuple[str, str]) -> list[g.Target]:
    return [target(e, lg, chr(ord("A") + i)) for i, (e, lg) in enumerate(pairs)]


def steps(base: str, *levels: tuple[float, str]) -> list[g.Threshold]:
    """Threshold steps: ``base`` colour below the first level."""
    out = [g.Threshold(base, 0, 0.0)]
    out += [g.Threshold(colour, i + 1, value) for i, (value, colour) in enumerate(levels)]
    return out


def timeseries(
    title: str,
    exprs: Sequence[tuple[str, str]],
    *,
    unit: str = "short",
    thresholds: list[g.Threshold] | None = None,
    description: str = "",
    width: int = 12,
    value_min: float | None = None,
    value_max: float | None = None,
) -> g.TimeSeries:
    return g.TimeSeries(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=targets(*exprs),
        unit=unit,
        thresholds=thresholds or steps("green"),
        thresholdsStyleMode="line" if thresholds else "off",
        gridPos=g.GridPos(h=PANEL_HEIGHT, w=width, x=0, y=0),
        valueMin=value_min,
        valueMax=value_max,
    )


def stat(
    title: str,
    expr: str,
    *,
    legend: str = "",
    unit: str = "percentunit",
    thresholds: list[g.Threshold] | None = None,
    description: str = "",
    width: int = 6,
) -> g.Stat:
    return g.Stat(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=[target(expr, legend)],
        format=unit,
        reduceCalc="lastNotNull",
        thresholds=thresholds or steps("green"),
        gridPos=g.GridPos(h=PANEL_HEIGHT // 2 + 1, w=width, x=0, y=0),
    )


def layout(panels: Sequence[g.Panel]) -> list[g.Panel]:
    """Place panels left to right, wrapping at Grafana's 24 columns."""
    x = y = row_h = 0
    for panel in panels:
        pos = panel.gridPos
        if x + pos.w > 24:
            x, y, row_h = 0, y + row_h, 0
        pos.x, pos.y = x, y
        x += pos.w
        row_h = max(row_h, pos.h)
    return list(panels)


def dashboard(
    title: str,
    description: str,
    panels: Sequence[g.Panel],
    tags: list[str],
    *,
    instance_from: str = INSTANCE_FROM_TARGETS,
) -> g.Dashboard:
    return g.Dashboard(
        title=title,
        description=description,
        uid=uid_for(title),
        tags=tags,
        timezone="utc",
        refresh="30s",
        templating=templating(instance_from),
        panels=layout(panels),
        time=g.Time("now-6h", "now"),
    ).auto_panel_ids()
