"""SLO overview: hit rate per type against its target, latency against the
threshold, error budget remaining and burn rate, operations and errors.

Every SLI, budget and burn-rate query comes from :mod:`exporter.sli`."""

from __future__ import annotations

from datetime import timedelta

from grafanalib import core as g

from exporter import metrics as m
from exporter import sli
from exporter.dashboards.common import RATE, TARGET, dashboard, sel, stat, steps, timeseries
from exporter.rules.builders import percent, quantile_name
from exporter.rules.model import number
from exporter.slo import SLO, format_duration

TITLE = "Cache SLO overview"
BURN_WINDOW = timedelta(hours=1)
REDIS = m.LAYER_REDIS


def build(slo: SLO) -> g.Dashboard:
    panels: list[g.Panel] = []
    budget_steps = steps("red", (0.0, "orange"), (0.25, "green"))
    *hit_rates, latency = sli.objectives(slo)
    for o in hit_rates:
        what = "all reads" if o.value == m.TYPE_ALL else o.value
        panels.append(
            stat(
                f"Hit-rate budget left: {what}",
                o.recorded_budget_left(),
                thresholds=budget_steps,
                description=f"Error budget left over {format_duration(slo.window)} "
                "(1 = untouched, below 0 = objective missed).",
                width=4,
            )
        )
    lat = slo.latency
    panels.append(
        stat(
            f"Latency budget left: {lat.operation}",
            latency.recorded_budget_left(),
            thresholds=budget_steps,
            width=4,
        )
    )
    for o in hit_rates:
        what = "all reads" if o.value == m.TYPE_ALL else f"{o.value} reads"
        panels.append(
            timeseries(
                f"Hit rate: {what} (objective {percent(o.target)})",
                [(o.raw(TARGET, RATE), "hit rate")],
                unit="percentunit",
                thresholds=steps("red", (o.target, "green")),
                width=6,
                value_max=1,
            )
        )
    panels.append(
        timeseries(
            "Hit rate by type",
            [(sli.hit_ratio(TARGET, RATE, by=("type",), layer=REDIS), "{{type}}")],
            unit="percentunit",
            thresholds=steps("red", (slo.hit_rate_objective, "green")),
            value_max=1,
        )
    )
    quantiles = sorted({0.5, 0.95, lat.objective})
    panels.append(
        timeseries(
            f"{lat.operation.upper()} latency against {format_duration(lat.threshold)}",
            [
                (
                    sli.latency_quantile(
                        number(q), TARGET, RATE, layer=REDIS, operation=lat.operation
                    ),
                    f"p{quantile_name(q)}",
                )
                for q in quantiles
            ],
            unit="s",
            thresholds=steps("green", (lat.threshold_seconds, "red")),
        )
    )
    burn = [
        (sli.burn_rate(o.recorded(BURN_WINDOW), o.target), f"hit rate {o.value}") for o in hit_rates
    ]
    burn.append(
        (sli.burn_rate(latency.recorded(BURN_WINDOW), latency.target), f"latency {lat.operation}")
    )
    panels.append(
        timeseries(
            f"Error budget burn rate ({format_duration(BURN_WINDOW)})",
            burn,
            thresholds=steps("green", (1.0, "orange")),
            description="1 = spending the budget exactly over the SLO window.",
        )
    )
    panels += [
        timeseries(
            "Reads per second by type",
            [(sli.reads(TARGET, RATE, by=("type",), layer=REDIS), "{{type}}")],
            unit="reqps",
            width=8,
        ),
        timeseries(
            "Calls per second by operation",
            [(sli.calls(TARGET, RATE, layer=REDIS), "{{operation}}")],
            unit="reqps",
            width=8,
        ),
        timeseries(
            "Errors per second",
            [
                (
                    sli.sum_rate(sel(m.CACHE_ERRORS), RATE, ("operation", "error")),
                    "{{operation}} {{error}}",
                )
            ],
            unit="reqps",
            width=8,
        ),
    ]
    return dashboard(
        TITLE,
        "Cache SLOs from the SLO file: hit rate per key type, GET latency, error budgets.",
        panels,
        ["cache", "slo"],
    )
