"""Hit ratio at each layer the data reaches: the Redis client, the Redis server
(INFO keyspace counters) and PostgreSQL's buffer cache (queries from :mod:`exporter.sli`)."""

from __future__ import annotations

from grafanalib import core as g

from exporter import metrics as m
from exporter import sli
from exporter.dashboards.common import (
    RATE,
    alert_annotation,
    app_scope,
    dashboard,
    exporter_scope,
    stat,
    steps,
    timeseries,
)
from exporter.rules.builders import percent
from exporter.rules.config import RuleConfig
from exporter.slo import SLO

TITLE = "Cache layers"


def build(slo: SLO, config: RuleConfig) -> g.Dashboard:
    del config  # the layers have no alert of their own to link a runbook for
    app = app_scope(slo)
    # the exporter's series: redis_* carry the Redis address as instance, the buffer-cache
    # counters the exporter's own: neither is the application's instance variable
    exporter = exporter_scope(slo, instance=False)
    layers = (
        # the client's counters: the application's job and scrape targets
        ("Redis, client-side", sli.hit_ratio(app, RATE, layer=m.LAYER_REDIS)),
        # redis_* carry the Redis address as instance: the exporter's job only
        (
            "Redis, server-side",
            sli.hit_ratio(
                exporter,
                RATE,
                layer=None,
                counters=(m.REDIS_KEYSPACE_HITS, m.REDIS_KEYSPACE_MISSES),
            ),
        ),
        # the buffer-cache counters come from the exporter (labelled with its address)
        ("PostgreSQL buffer cache", sli.hit_ratio(exporter, RATE, layer=m.LAYER_POSTGRES)),
    )
    target = steps("red", (slo.hit_rate_objective, "green"))
    panels: list[g.Panel] = [
        stat(f"Hit ratio: {name}", expr, thresholds=target, width=8) for name, expr in layers
    ]
    panels.append(
        timeseries(
            f"Hit ratio by layer (overall objective {percent(slo.hit_rate_objective)})",
            [(expr, name) for name, expr in layers],
            unit="percentunit",
            thresholds=target,
            width=24,
            value_max=1,
        )
    )
    panels.append(
        timeseries(
            "PostgreSQL buffer cache hit ratio by type",
            [(sli.hit_ratio(exporter, RATE, by=("type",), layer=m.LAYER_POSTGRES), "{{type}}")],
            unit="percentunit",
            width=24,
            value_max=1,
        )
    )
    return dashboard(
        slo,
        TITLE,
        "How much of each read is answered at each layer the exporter can measure.",
        panels,
        ["cache", "layers"],
        variables=("app_job", "exporter_job", "instance"),
        instance_from=f"up{{{app_scope(slo, instance=False)}}}",
        annotations=[alert_annotation(slo)],
    )
