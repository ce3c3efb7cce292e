"""Hit ratio at each layer the data reaches: the Redis client, the Redis server
(INFO keyspace counters) and PostgreSQL's buffer cache."""

from __future__ import annotations

from grafanalib import core as g

from exporter import metrics as m
from exporter.dashboards.common import RATE, dashboard, sel, stat, steps, timeseries
from exporter.rules.builders import percent
from exporter.slo import SLO

TITLE = "Cache layers"


def _ratio(hits: str, misses: str) -> str:
    h, mi = f"sum(rate({hits}[{RATE}]))", f"sum(rate({misses}[{RATE}]))"
    return f"{h} / ({h} + {mi})"


def build(slo: SLO) -> g.Dashboard:
    redis, pg = f'layer="{m.LAYER_REDIS}"', f'layer="{m.LAYER_POSTGRES}"'
    layers = (
        ("Redis, client-side", _ratio(sel(m.CACHE_HITS, redis), sel(m.CACHE_MISSES, redis))),
        # redis_* carry the Redis address as instance, which the variable (scrape
        # targets: apps and exporters) does not list: filtered by job only
        (
            "Redis, server-side",
            _ratio(
                sel(m.REDIS_KEYSPACE_HITS, by_instance=False),
                sel(m.REDIS_KEYSPACE_MISSES, by_instance=False),
            ),
        ),
        ("PostgreSQL buffer cache", _ratio(sel(m.CACHE_HITS, pg), sel(m.CACHE_MISSES, pg))),
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
    pg_hits = f"sum by (type) (rate({sel(m.CACHE_HITS, pg)}[{RATE}]))"
    pg_misses = f"sum by (type) (rate({sel(m.CACHE_MISSES, pg)}[{RATE}]))"
    panels.append(
        timeseries(
            "PostgreSQL buffer cache hit ratio by type",
            [(f"{pg_hits} / ({pg_hits} + {pg_misses})", "{{type}}")],
            unit="percentunit",
            width=24,
            value_max=1,
        )
    )
    return dashboard(
        TITLE,
        "How much of each read is answered at each layer the exporter can measure.",
        panels,
        ["cache", "layers"],
    )
