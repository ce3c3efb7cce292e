"""SLO overview: hit rate per type against its target, latency against the
threshold, error budget remaining and burn rate, operations and errors."""

from __future__ import annotations

from datetime import timedelta

from grafanalib import core as g

from exporter import metrics as m
from exporter.dashboards.common import RATE, dashboard, sel, stat, steps, timeseries
from exporter.rules import conventions as c
from exporter.rules.builders import percent, quantile_name
from exporter.rules.model import decimal, number
from exporter.slo import SLO, format_duration

TITLE = "Cache SLO overview"
BURN_WINDOW = timedelta(hours=1)


def hit_ratio(type_: str | None) -> str:
    extra = f'layer="{m.LAYER_REDIS}"' + (f', type="{type_}"' if type_ else "")
    hits = f"sum(rate({sel(m.CACHE_HITS, extra)}[{RATE}]))"
    misses = f"sum(rate({sel(m.CACHE_MISSES, extra)}[{RATE}]))"
    return f"{hits} / ({hits} + {misses})"


def build(slo: SLO) -> g.Dashboard:
    panels: list[g.Panel] = []
    budget_steps = steps("red", (0.0, "orange"), (0.25, "green"))
    for t in slo.objectives:
        what = "all reads" if t == m.TYPE_ALL else t
        panels.append(
            stat(
                f"Hit-rate budget left: {what}",
                f'{c.RECORD_BUDGET_REMAINING}{{slo="{c.SLO_HIT_RATE}", type="{t}"}}',
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
            f'{c.RECORD_BUDGET_REMAINING}{{slo="{c.SLO_LATENCY}", operation="{lat.operation}"}}',
            thresholds=budget_steps,
            width=4,
        )
    )
    for t, objective in slo.objectives.items():
        what = "all reads" if t == m.TYPE_ALL else f"{t} reads"
        panels.append(
            timeseries(
                f"Hit rate: {what} (objective {percent(objective)})",
                [(hit_ratio(None if t == m.TYPE_ALL else t), "hit rate")],
                unit="percentunit",
                thresholds=steps("red", (objective, "green")),
                width=6,
                value_max=1,
            )
        )
    redis = f'layer="{m.LAYER_REDIS}"'
    read_hits = f"sum by (type) (rate({sel(m.CACHE_HITS, redis)}[{RATE}]))"
    read_misses = f"sum by (type) (rate({sel(m.CACHE_MISSES, redis)}[{RATE}]))"
    panels.append(
        timeseries(
            "Hit rate by type",
            [(f"{read_hits} / ({read_hits} + {read_misses})", "{{type}}")],
            unit="percentunit",
            thresholds=steps("red", (slo.hit_rate_objective, "green")),
            value_max=1,
        )
    )
    buckets = sel(
        m.CACHE_LATENCY,
        f'layer="{m.LAYER_REDIS}", operation="{lat.operation}"',
        suffix="_bucket",
    )
    quantiles = sorted({0.5, 0.95, lat.objective})
    panels.append(
        timeseries(
            f"{lat.operation.upper()} latency against {format_duration(lat.threshold)}",
            [
                (
                    f"histogram_quantile({number(q)}, sum by (le) (rate({buckets}[{RATE}])))",
                    f"p{quantile_name(q)}",
                )
                for q in quantiles
            ],
            unit="s",
            thresholds=steps("green", (lat.threshold_seconds, "red")),
        )
    )
    burn = [
        (
            f'(1 - {c.record_hit_ratio(BURN_WINDOW)}{{type="{t}"}}) / {number(1 - decimal(o))}',
            f"hit rate {t}",
        )
        for t, o in slo.objectives.items()
    ]
    burn.append(
        (
            f'(1 - {c.record_latency_good(BURN_WINDOW)}{{operation="{lat.operation}"}}) / '
            f"{number(1 - decimal(lat.objective))}",
            f"latency {lat.operation}",
        )
    )
    panels.append(
        timeseries(
            f"Error budget burn rate ({format_duration(BURN_WINDOW)})",
            burn,
            thresholds=steps("green", (1.0, "orange")),
            description="1 = spending the budget exactly over the SLO window.",
        )
    )
    calls = sel(m.CACHE_LATENCY, f'layer="{m.LAYER_REDIS}"', suffix="_count")
    panels += [
        timeseries(
            "Reads per second by type",
            [(f"{read_hits} + {read_misses}", "{{type}}")],
            unit="reqps",
            width=8,
        ),
        timeseries(
            "Calls per second by operation",
            [(f"sum by (operation) (rate({calls}[{RATE}]))", "{{operation}}")],
            unit="reqps",
            width=8,
        ),
        timeseries(
            "Errors per second",
            [
                (
                    f"sum by (operation, error) (rate({sel(m.CACHE_ERRORS)}[{RATE}]))",
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
