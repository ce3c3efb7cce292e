"""SLO overview: each objective's budget, its SLI against the objective, the burn rates
over the windows its alerts use, the budget burn-down over the SLO window, hit rate per
type against each type's own objective, GET latency as a heatmap and against its
threshold, and traffic.

Every SLI, budget and burn-rate query comes from :mod:`exporter.sli`; windows and
factors from :mod:`exporter.rules.windows` (the same tiers the alerts are built from);
thresholds from the SLO file.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from grafanalib import core as g

from exporter import metrics as m
from exporter import sli
from exporter.dashboards.common import (
    RATE,
    alert_annotation,
    app_scope,
    dashboard,
    exporter_scope,
    fleet_legend,
    fleet_scope,
    heatmap,
    runbook_links,
    scoped,
    sel,
    stat,
    steps,
    timeseries,
    widths,
)
from exporter.rules import conventions as c
from exporter.rules.builders import percent, quantile_name
from exporter.rules.config import RuleConfig
from exporter.rules.model import number
from exporter.rules.windows import BurnTier, scaled_tiers, tiers_for_budget
from exporter.slo import SLO, format_duration

TITLE = "Cache SLO overview"
REDIS = m.LAYER_REDIS
#: the recorded SLI drawn beside the raw one (the window the ADR's alerts read)
RECORDED_WINDOW = timedelta(minutes=5)
#: how an overspent budget reads (the status page says "overspent" and the multiple):
#: any value below 0 (a budget spent exactly, 0, is not overspent; -1e9 stands for
#: -infinity, which the JSON model writes as null and grafanalib's output drops)
OVERSPENT = [
    {"type": "range", "options": {"from": -1e9, "to": -1e-9,
                                  "result": {"text": "overspent", "color": "red"}}},
]  # fmt: skip


def _what(o: sli.Objective) -> str:
    if o.kind == sli.LATENCY:
        return f"{o.value.upper()} latency"
    if o.kind in (sli.API_LATENCY, sli.LAYER_HIT_RATE):
        return o.title
    return "all reads" if o.value == m.TYPE_ALL else f"{o.value} reads"


def _alerts(o: sli.Objective) -> tuple[str, ...]:
    """The objective's alerts: its ADR alert (Redis objectives only), then its burn-rate
    alert (always last)."""
    if o.kind == sli.LATENCY:
        return c.ALERT_HIGH_LATENCY, c.ALERT_LATENCY_BURN
    if o.kind == sli.API_LATENCY:
        return (c.ALERT_API_LATENCY_BURN,)
    if o.kind == sli.LAYER_HIT_RATE:
        return (c.ALERT_HIT_RATE_BURN,)
    return c.ALERT_LOW_HIT_RATE, c.ALERT_HIT_RATE_BURN


def _raw_scope(slo: SLO, o: sli.Objective) -> str:
    """Where the objective's raw series come from, as the SLO file selects them: the CDN
    and PostgreSQL layers are the exporter's, everything else the application's."""
    if o.kind == sli.LAYER_HIT_RATE and o.layer in (m.LAYER_CDN, m.LAYER_POSTGRES):
        return exporter_scope(slo, instance=False)
    return app_scope(slo)


def _tiers(slo: SLO, o: sli.Objective) -> tuple[BurnTier, ...]:
    kept, _ = tiers_for_budget(scaled_tiers(slo.window), sli.error_budget(o.target))
    return kept


def fleet_objectives(slo: SLO) -> tuple[sli.Objective, ...]:
    """The objectives with the ``service`` matcher left to the ``$service`` variable."""
    return tuple(replace(o, service="") for o in sli.objectives(slo))


def budget_stats(slo: SLO, objectives: tuple[sli.Objective, ...]) -> list[g.Panel]:
    window = format_duration(slo.window)
    budget_steps = steps("red", (0.0, "orange"), (0.25, "green"))
    return [
        stat(
            f"Budget left: {_what(o)}",
            scoped(o.recorded_budget_left(), fleet_scope(slo)),
            legend=fleet_legend(slo, "{{service}}"),
            thresholds=budget_steps,
            description=f"Error budget left over {window} (100% untouched, 0% spent; "
            "'overspent': the objective is missed over the window).",
            width=w,
            mappings=OVERSPENT,
        )
        for o, w in zip(objectives, widths(len(objectives), len(objectives)), strict=True)
    ]


def sli_panels(
    slo: SLO, config: RuleConfig, objectives: tuple[sli.Objective, ...]
) -> list[g.Panel]:
    """Each SLI against its objective: raw (the selected app instances) and recorded."""
    panels: list[g.Panel] = []
    for o, w in zip(objectives, widths(len(objectives), 3), strict=True):
        if o.kind == sli.LATENCY:
            name = "share within threshold"
            title = f"Latency: {o.value.upper()} within {format_duration(slo.latency.threshold)}"
        elif o.kind == sli.API_LATENCY:
            name, title = "share within threshold", o.title
        else:
            name, title = "hit rate", f"Hit rate: {_what(o)}"
        panels.append(
            timeseries(
                f"{title} (objective {percent(o.target)})",
                [
                    (o.raw(_raw_scope(slo, o), RATE), f"{name} (selected instances)"),
                    (
                        scoped(o.recorded(RECORDED_WINDOW), fleet_scope(slo)),
                        fleet_legend(
                            slo,
                            f"{name} as alerted on ({format_duration(RECORDED_WINDOW)}) "
                            "{{service}}",
                        ),
                    ),
                ],
                unit="percentunit",
                thresholds=steps("red", (o.target, "green")),
                width=w,
                value_max=1,
                description=f"The SLI against its objective ({percent(o.target)}, the "
                f"threshold line), judged over {format_duration(slo.window)}.",
                links=runbook_links(config, *_alerts(o)),
            )
        )
    return panels


def burn_panels(
    slo: SLO, config: RuleConfig, objectives: tuple[sli.Objective, ...]
) -> list[g.Panel]:
    """Burn rate over each window the objective's alerts read, lines at their factors."""
    panels: list[g.Panel] = []
    for o, w in zip(objectives, widths(len(objectives), 3), strict=True):
        tiers = _tiers(slo, o)
        windows = sorted({t.long for t in tiers} | {t.short for t in tiers})
        factors = sorted({float(t.factor) for t in tiers})
        colours = ["yellow", "orange", "red", "dark-red", "purple"]
        rules = ", ".join(
            f"{t.severity} above {number(t.factor)}x over {c.window_name(t.long)} "
            f"and {c.window_name(t.short)}"
            for t in tiers
        )
        panels.append(
            timeseries(
                f"Burn rate: {_what(o)}",
                [
                    (
                        scoped(sli.burn_rate(o.recorded(window), o.target), fleet_scope(slo)),
                        fleet_legend(slo, format_duration(window)),
                    )
                    for window in windows
                ],
                thresholds=steps("green", *zip(factors, colours, strict=False)),
                width=w,
                description="How many times faster than sustainable the "
                f"{format_duration(slo.window)} budget is spent, over each window the alerts "
                f"read ({rules}).",
                links=runbook_links(config, _alerts(o)[-1]),
            )
        )
    return panels


def hit_rate_by_type(slo: SLO) -> g.Panel:
    """Every type's hit rate; a type with an objective gets its own threshold line."""
    overrides: list[dict[str, Any]] = [
        {
            "matcher": {"id": "byName", "options": kt.name},
            "properties": [
                {"id": "thresholds", "value": {"mode": "absolute", "steps": [
                    {"color": "red", "value": None},
                    {"color": "green", "value": kt.hit_rate_objective}]}},
                {"id": "custom.thresholdsStyle", "value": {"mode": "line"}},
            ],
        }
        for kt in slo.key_types
        if kt.hit_rate_objective is not None
    ]  # fmt: skip
    with_objective = ", ".join(
        f"{kt.name} {percent(kt.hit_rate_objective)}"
        for kt in slo.key_types
        if kt.hit_rate_objective is not None
    )
    return timeseries(
        "Hit rate by type",
        [(sli.hit_ratio(app_scope(slo), RATE, by=("type",), layer=REDIS), "{{type}}")],
        unit="percentunit",
        value_max=1,
        overrides=overrides,
        description=f"Threshold lines only for the types with an objective ({with_objective}).",
    )


def latency_panels(slo: SLO, config: RuleConfig) -> list[g.Panel]:
    lat = slo.latency
    quantiles = sorted({0.5, 0.95, lat.objective})
    threshold = format_duration(lat.threshold)
    buckets = sli.sum_rate(
        sel(m.CACHE_LATENCY, f'layer="{REDIS}", operation="{lat.operation}"', suffix="_bucket",
            scope=app_scope(slo)),
        RATE,
        ("le",),
    )  # fmt: skip
    return [
        heatmap(
            f"{lat.operation.upper()} latency distribution",
            buckets,
            description=f"Calls per second by latency bucket; the objective: "
            f"{percent(lat.objective)} within {threshold}.",
        ),
        timeseries(
            f"{lat.operation.upper()} latency against {threshold}",
            [
                (
                    sli.latency_quantile(
                        number(q), app_scope(slo), RATE, layer=REDIS, operation=lat.operation
                    ),
                    f"p{quantile_name(q)}",
                )
                for q in quantiles
            ],
            unit="s",
            thresholds=steps("green", (lat.threshold_seconds, "red")),
            links=runbook_links(config, c.ALERT_HIGH_LATENCY),
        ),
    ]


def burn_down(slo: SLO, objectives: tuple[sli.Objective, ...]) -> g.Panel:
    window = format_duration(slo.window)
    return timeseries(
        f"Error budget left over the last {window}",
        [
            (scoped(o.recorded_budget_left(), fleet_scope(slo)), fleet_legend(slo, _what(o)))
            for o in objectives
        ],
        unit="percentunit",
        thresholds=steps("red", (0.0, "green")),
        time_from=window,
        description=f"Each objective's budget over the {window} SLO window (1 = untouched, "
        "below 0 = overspent), drawn over the whole window whatever the time picker says.",
    )


def build(slo: SLO, config: RuleConfig) -> g.Dashboard:
    objectives = fleet_objectives(slo)
    exporter_job = ("exporter_job",) if any(
        "$exporter_job" in _raw_scope(slo, o) for o in objectives
    ) else ()  # fmt: skip
    panels: list[g.Panel] = [
        *budget_stats(slo, objectives),
        *sli_panels(slo, config, objectives),
        *burn_panels(slo, config, objectives),
        burn_down(slo, objectives),
        hit_rate_by_type(slo),
        *latency_panels(slo, config),
        timeseries(
            "Reads per second by type",
            [(sli.reads(app_scope(slo), RATE, by=("type",), layer=REDIS), "{{type}}")],
            unit="reqps",
            width=8,
        ),
        timeseries(
            "Calls per second by operation",
            [(sli.calls(app_scope(slo), RATE, layer=REDIS), "{{operation}}")],
            unit="reqps",
            width=8,
        ),
        timeseries(
            "Errors per second",
            [
                (
                    sli.sum_rate(
                        sel(m.CACHE_ERRORS, scope=app_scope(slo)), RATE, ("operation", "error")
                    ),
                    "{{operation}} {{error}}",
                )
            ],
            unit="reqps",
            width=8,
            links=runbook_links(config, c.ALERT_CLIENT_ERRORS),
        ),
    ]
    return dashboard(
        slo,
        TITLE,
        "Cache SLOs from the SLO file: budgets, each SLI against its objective, the burn "
        "rates the alerts use, hit rate per key type, GET latency.",
        panels,
        ["cache", "slo"],
        # the exporter's job too when an objective reads its series (CDN, PostgreSQL)
        variables=("app_job", *exporter_job, "instance"),
        instance_from=f"up{{{app_scope(slo, instance=False)}}}",
        annotations=[alert_annotation(slo)],
    )
