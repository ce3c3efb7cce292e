"""The Redis server's view: memory against maxmemory, evictions and expirations
by type, keys and size by type, clients, server-side latency."""

from __future__ import annotations

from grafanalib import core as g

from exporter import metrics as m
from exporter.dashboards.common import (
    EXPORTER_JOB,
    RATE,
    alert_annotation,
    dashboard,
    runbook_links,
    sel,
    stat,
    steps,
    timeseries,
)
from exporter.rules import conventions as c
from exporter.rules.config import RuleConfig
from exporter.slo import SLO

TITLE = "Cache Redis server"
PER_JOB = (
    "Per-type estimates from the exporter: summed over the selected jobs, not filtered "
    "by instance (these series are labelled with the exporter's address, not Redis')."
)


def build(slo: SLO, config: RuleConfig) -> g.Dashboard:
    limit = float(config.memory_used_ratio_max)
    used, maxmem = sel(m.REDIS_MEMORY_USED), sel(m.REDIS_MEMORY_MAX)
    redis = f'layer="{m.LAYER_REDIS}"'

    # the per-type series (cache_keys, cache_size_bytes, cache_evictions_total) carry
    # no instance of their own: Prometheus gives them the exporter's address, never
    # the Redis one the instance variable lists, so they are filtered by job only
    def by_type(spec: m.MetricSpec, extra: str, *, rate: bool) -> str:
        inner = sel(spec, extra, scope=EXPORTER_JOB)
        return f"sum by (type) (rate({inner}[{RATE}]))" if rate else f"sum by (type) ({inner})"

    per_cmd = f"sum by (cmd) (rate({sel(m.REDIS_COMMANDS_DURATION)}[{RATE}]))"
    calls_cmd = f"sum by (cmd) (rate({sel(m.REDIS_COMMANDS)}[{RATE}]))"
    panels: list[g.Panel] = [
        stat("Redis up", f"min({sel(m.REDIS_UP)})", unit="none",
             thresholds=steps("red", (1.0, "green")), width=6,
             links=runbook_links(config, c.ALERT_REDIS_DOWN, c.ALERT_EXPORTER_DOWN)),
        stat("Memory used of maxmemory", f"max({used} / ({maxmem} > 0))",
             thresholds=steps("green", (limit, "red")), width=6,
             links=runbook_links(config, c.ALERT_MEMORY_NEAR_MAX)),
        stat("Connected clients", f"sum({sel(m.REDIS_CONNECTED_CLIENTS)})", unit="none",
             width=6),
        stat("Keys (sampled estimate)", f"sum({sel(m.CACHE_KEYS, redis, scope=EXPORTER_JOB)})",
             unit="none", width=6, description=PER_JOB),
        timeseries("Memory used and maxmemory",
                   [(used, "used {{instance}}"), (f"{maxmem} > 0", "maxmemory {{instance}}")],
                   unit="bytes"),
        timeseries("Clients", [(sel(m.REDIS_CONNECTED_CLIENTS), "{{instance}}")], unit="none"),
        timeseries("Evictions by type (maxmemory)",
                   [(by_type(m.CACHE_EVICTIONS, f'{redis}, reason="{m.REASON_MAXMEMORY}"',
                             rate=True), "{{type}}"),
                    (f"sum(rate({sel(m.REDIS_EVICTED_KEYS)}[{RATE}]))", "Redis total")],
                   unit="ops", description=PER_JOB,
                   links=runbook_links(config, c.ALERT_EVICTION_SURGE)),
        timeseries("Expirations by type (TTL)",
                   [(by_type(m.CACHE_EVICTIONS, f'{redis}, reason="{m.REASON_EXPIRED}"',
                             rate=True), "{{type}}"),
                    (f"sum(rate({sel(m.REDIS_EXPIRED_KEYS)}[{RATE}]))", "Redis total")],
                   unit="ops", description=PER_JOB),
        timeseries("Keys by type", [(by_type(m.CACHE_KEYS, redis, rate=False), "{{type}}")],
                   unit="none", description=PER_JOB),
        timeseries("Memory by type", [(by_type(m.CACHE_SIZE, redis, rate=False), "{{type}}")],
                   unit="bytes", description=PER_JOB),
        timeseries("Server-side latency percentiles",
                   [(sel(m.REDIS_LATENCY_PERCENTILES), "{{cmd}} p{{quantile}}")], unit="s"),
        timeseries("Mean time per command", [(f"{per_cmd} / {calls_cmd}", "{{cmd}}")], unit="s"),
    ]  # fmt: skip
    return dashboard(
        slo,
        TITLE,
        "Redis INFO and the exporter's per-type estimates (keys, size, evictions).",
        panels,
        ["cache", "redis"],
        variables=("exporter_job", "instance"),
        instance_from=f"{m.REDIS_UP.name}{{{EXPORTER_JOB}}}",
        annotations=[alert_annotation(slo)],
    )
