"""Shared pieces of the dashboards: template variables, panel helpers, stable UIDs.

Every query names its metric through :mod:`exporter.metrics` or
:mod:`exporter.rules.conventions` (SLI, budget and burn-rate queries through
:mod:`exporter.sli`), and every threshold comes from the SLO file.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import attr
from grafanalib import core as g

from exporter import metrics as m
from exporter.metrics import MetricSpec
from exporter.rules.config import RuleConfig
from exporter.rules.conventions import record_hit_ratio
from exporter.slo import SLO, selector_text

DATASOURCE = "${datasource}"
INSTANCE = 'instance=~"$instance"'
#: a recording every service writes: where the fleet variables find their values
FLEET_SOURCE = record_hit_ratio(timedelta(minutes=5))
RATE = "$__rate_interval"
PANEL_HEIGHT = 8
STAT_HEIGHT = PANEL_HEIGHT // 2 + 1
GRID_COLUMNS = 24


def uid_for(title: str) -> str:
    """A stable UID derived from the dashboard's name (Grafana allows 40 chars)."""
    slug = "".join(ch if ch.isalnum() else "-" for ch in title.lower()).strip("-")
    digest = hashlib.sha256(title.encode()).hexdigest()[:8]
    return f"{slug[:31]}-{digest}"


def _query_variable(name: str, label: str, query: str, default: str = "$__all") -> g.Template:
    """A multi-value variable from ``label_values(...)`` with "All" (any value, also
    none: ``.*``), on ``default`` at first ("All" unless told)."""
    return g.Template(name=name, label=label, query=query, dataSource=DATASOURCE,
                      includeAll=True, multi=True, allValue=".*", default=default)  # fmt: skip


def _scope(variable: str, matchers: tuple[tuple[str, str], ...], instance: bool) -> str:
    """The ``job`` variable, the selector's other matchers, then (``instance``) the
    instance variable: ``job=~"$app_job", namespace="shop", instance=~"$instance"``."""
    others = tuple((k, v) for k, v in matchers if k != "job")
    parts = [f'job=~"${variable}"', selector_text(others), INSTANCE if instance else ""]
    return ", ".join(part for part in parts if part)


def app_scope(slo: SLO, *, instance: bool = True) -> str:
    """Selects the service's instrumented application as its SLO file does
    (``service.app_selector``), its job left to the ``$app_job`` variable (which starts
    on the file's job) and, unless told otherwise, its scrape targets to ``$instance``."""
    return _scope("app_job", slo.service.app, instance)


def exporter_scope(slo: SLO, *, instance: bool = True) -> str:
    """Selects the exporter(s) of the service's Redis as the SLO file does
    (``service.exporter_selector``), the job left to ``$exporter_job``; ``redis_*``
    series keep the Redis address as ``instance``."""
    return _scope("exporter_job", slo.service.exporter, instance)


def fleet_labels(slo: SLO) -> tuple[str, ...]:
    """The labels every recording and alert of the SLO file carries: ``service``, then
    the file's ``group_by`` labels (``cluster``, ``namespace``)."""
    return ("service", *slo.service.group_by)


def fleet_scope(slo: SLO) -> str:
    """``service=~"$service", cluster=~"$cluster"``: the fleet variables as matchers."""
    return ", ".join(f'{name}=~"${name}"' for name in fleet_labels(slo))


def fleet_legend(slo: SLO, text: str) -> str:
    """``text`` and the grouping labels, so one line per placement tells which it is."""
    return " ".join([text, *(f"{{{{{label}}}}}" for label in slo.service.group_by)])


def fleet_variables(slo: SLO) -> list[g.Template]:
    """``service`` (the SLO file's by default) and one variable per grouping label."""
    query = f"label_values({FLEET_SOURCE}, service)"
    service = _query_variable("service", "Service", query, slo.service.name)
    return [service] + [
        _query_variable(label, label.capitalize(), f"label_values({FLEET_SOURCE}, {label})")
        for label in slo.service.group_by
    ]


def _job_source(spec: MetricSpec, matchers: tuple[tuple[str, str], ...]) -> str:
    """``spec``'s series narrowed by the selector's matchers other than ``job`` (the
    variable lists the jobs within, say, ``namespace="shop"``)."""
    others = selector_text(tuple((k, v) for k, v in matchers if k != "job"))
    return f"{spec.name}{{{others}}}" if others else spec.name


#: the job and instance variables a dashboard may use, by name, in the order shown;
#: each builder takes the SLO file and the series the instance variable lists
VARIABLES: dict[str, Callable[[SLO, str], g.Template]] = {
    # the application's job: whoever exposes the client's counters
    "app_job": lambda slo, _: _query_variable(
        "app_job", "Application job",
        f"label_values({_job_source(m.CACHE_HITS, slo.service.app)}, job)",
        dict(slo.service.app).get("job", "$__all"),
    ),
    # the exporter's job: whoever exposes redis_up
    "exporter_job": lambda slo, _: _query_variable(
        "exporter_job", "Exporter job",
        f"label_values({_job_source(m.REDIS_UP, slo.service.exporter)}, job)",
        dict(slo.service.exporter).get("job", "$__all"),
    ),
    "instance": lambda _, source: _query_variable(
        "instance", "Instance", f"label_values({source}, instance)"
    ),
}  # fmt: skip


def templating(slo: SLO, variables: Sequence[str], instance_from: str) -> g.Templating:
    """The datasource, the fleet variables, then ``variables`` (names of :data:`VARIABLES`),
    the job variables starting on the SLO file's own jobs.

    ``instance_from`` is the series whose ``instance`` values the panels filter on:
    ``up`` of the application (its scrape targets) or ``redis_up`` of the exporter
    (the Redis addresses, which ``up`` never lists).
    """
    datasource = g.Template(name="datasource", label="Data source", query="prometheus",
                            type="datasource")  # fmt: skip
    chosen = [VARIABLES[name](slo, instance_from) for name in variables]
    return g.Templating([datasource, *fleet_variables(slo), *chosen])


def sel(spec: MetricSpec | str, extra: str = "", *, scope: str, suffix: str = "") -> str:
    """``name{scope, extra}``."""
    name = (spec if isinstance(spec, str) else spec.name) + suffix
    inner = ", ".join(x for x in (scope, extra) if x)
    return f"{name}{{{inner}}}"


_SELECTOR_START = re.compile(r"\{(?=\s*(\}?))")


def scoped(expr: str, scope: str) -> str:
    """``expr`` with ``scope``'s matchers added to each of its series selectors.

    Recorded SLIs come from :mod:`exporter.sli` with their own equality matchers
    (``type="session"``); a dashboard adds its variables' regex matchers to them,
    so the SLI is still written once."""
    return _SELECTOR_START.sub(lambda mt: "{" + scope + ("" if mt.group(1) else ", "), expr)


def runbook_links(config: RuleConfig, *alerts: str) -> list[dict[str, object]]:
    """Panel links to the runbooks of ``alerts`` (the URL the rules annotate them with)."""
    return [
        {"title": f"Runbook: {alert}", "url": config.runbook_url(alert), "type": "link",
         "targetBlank": True, "asDropdown": False, "icon": "doc", "includeVars": False,
         "keepTime": False, "tags": [], "tooltip": f"What to do when {alert} fires"}
        for alert in alerts
    ]  # fmt: skip


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
    overrides: list[dict[str, Any]] | None = None,
    links: list[dict[str, object]] | None = None,
    time_from: str | None = None,
) -> g.TimeSeries:
    return g.TimeSeries(
        overrides=overrides or [],
        links=links or [],
        timeFrom=time_from,
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
    mappings: list[dict[str, Any]] | None = None,
    links: list[dict[str, object]] | None = None,
) -> g.Stat:
    return g.Stat(
        mappings=mappings or [],
        links=links or [],
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=[target(expr, legend)],
        format=unit,
        reduceCalc="lastNotNull",
        thresholds=thresholds or steps("green"),
        gridPos=g.GridPos(h=STAT_HEIGHT, w=width, x=0, y=0),
    )


@attr.s
class Heatmap(g.Panel):  # type: ignore[misc]
    """Grafana's current heatmap panel over pre-bucketed series (grafanalib's
    ``Heatmap`` writes the legacy panel's keys)."""

    unit: str = attr.ib(default="s")

    def to_json_data(self) -> dict[str, Any]:
        return self.panel_json(  # type: ignore[no-any-return]
            {
                "type": "heatmap",
                "options": {
                    "calculate": False,
                    "cellGap": 1,
                    "color": {"mode": "scheme", "scheme": "Oranges", "steps": 64,
                              "exponent": 0.5, "fill": "dark-orange", "reverse": False,
                              "scale": "exponential"},
                    "rowsFrame": {"layout": "auto"},
                    "yAxis": {"axisPlacement": "left", "unit": self.unit},
                    "tooltip": {"mode": "single", "yHistogram": True},
                    "legend": {"show": True},
                    "filterValues": {"le": 1e-9},
                },
                "fieldConfig": {"defaults": {"custom": {"hideFrom": {
                    "legend": False, "tooltip": False, "viz": False}}}, "overrides": []},
            }
        )  # fmt: skip


def heatmap(
    title: str, expr: str, *, description: str = "", width: int = 12, unit: str = "s"
) -> Heatmap:
    """A heatmap of ``expr``'s series by ``le`` (one row per histogram bucket)."""
    # grafanalib's attrs classes are untyped: mypy does not see Panel's fields
    return Heatmap(  # type: ignore[call-arg]
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=[g.Target(expr=expr, legendFormat="{{le}}", refId="A", datasource=DATASOURCE,
                          format="heatmap")],
        unit=unit,
        gridPos=g.GridPos(h=PANEL_HEIGHT, w=width, x=0, y=0),
    )  # fmt: skip


def widths(count: int, per_row: int) -> list[int]:
    """Widths for ``count`` panels, at most ``per_row`` a row, every row filling the
    grid's 24 columns (the first panels of a row take the remainder)."""
    out: list[int] = []
    for start in range(0, count, per_row):
        n = min(per_row, count - start)
        base, extra = divmod(GRID_COLUMNS, n)
        out += [base + (1 if i < extra else 0) for i in range(n)]
    return out


def layout(panels: Sequence[g.Panel]) -> list[g.Panel]:
    """Place panels left to right, wrapping at Grafana's 24 columns; refuses a row
    that leaves a gap (not filled to 24 columns, or panels of different heights)."""
    x = y = row_h = 0
    for panel in panels:
        pos = panel.gridPos
        if x + pos.w > GRID_COLUMNS:
            x, y, row_h = 0, y + row_h, 0
        if x and pos.h != row_h:
            raise ValueError(f"{panel.title!r}: height {pos.h} in a row of height {row_h}")
        pos.x, pos.y = x, y
        x += pos.w
        row_h = pos.h
        if x < GRID_COLUMNS and panel is panels[-1]:
            raise ValueError(f"{panel.title!r}: the last row ends at column {x}, not 24")
    rows: dict[int, int] = {}
    for panel in panels:
        rows[panel.gridPos.y] = rows.get(panel.gridPos.y, 0) + panel.gridPos.w
    gaps = {y: w for y, w in rows.items() if w != GRID_COLUMNS}
    if gaps:
        raise ValueError(f"rows not filled to {GRID_COLUMNS} columns (y: width): {gaps}")
    return list(panels)


def dashboard(
    slo: SLO,
    title: str,
    description: str,
    panels: Sequence[g.Panel],
    tags: list[str],
    *,
    variables: Sequence[str],
    instance_from: str,
    annotations: Sequence[dict[str, Any]] = (),
) -> g.Dashboard:
    return g.Dashboard(
        title=title,
        description=description,
        uid=uid_for(title),
        tags=tags,
        timezone="utc",
        refresh="30s",
        annotations=g.Annotations(list=list(annotations)),
        templating=templating(slo, variables, instance_from),
        panels=layout(panels),
        time=g.Time("now-6h", "now"),
    ).auto_panel_ids()


def alert_annotation(slo: SLO) -> dict[str, Any]:
    """Firing alerts (Prometheus' ``ALERTS`` series) as annotations on every panel."""
    return {
        "name": "Alerts firing",
        "datasource": {"type": "prometheus", "uid": DATASOURCE},
        "enable": True,
        "hide": False,
        "iconColor": "red",
        "expr": f'ALERTS{{alertstate="firing", {fleet_scope(slo)}}}',
        "step": "60s",
        "titleFormat": "{{alertname}} ({{severity}})",
        "textFormat": "{{slo}} {{type}}{{operation}} {{long_window}}",
        "tagKeys": "alertname,severity,service",
        "useValueForTime": False,
    }
