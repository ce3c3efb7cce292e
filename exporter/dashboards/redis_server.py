"""The Redis server's view: memory against maxmemory, evictions and expirations
by type, keys and size by type, clients, server-side latency; then the topology
(replication, Redis Cluster, Sentinel) and persistence, whose panels stay empty
where that topology does not exist (as their alerts stay silent)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from grafanalib import core as g

from exporter import metrics as m
from exporter.dashboards import common
from exporter.dashboards.common import (
    RATE,
    alert_annotation,
    dashboard,
    exporter_scope,
    runbook_links,
    stat,
    steps,
    timeseries,
)
from exporter.rules import conventions as c
from exporter.rules import topology as t
from exporter.rules.config import RuleConfig
from exporter.slo import SLO

TITLE = "Cache Redis server"
PER_JOB = (
    "Per-type estimates from the exporter: summed over the selected jobs, not filtered "
    "by instance (these series are labelled with the exporter's address, not Redis')."
)


def _selectors(slo: SLO) -> tuple[Callable[..., str], str]:
    """``sel`` over the exporter's series as the SLO file selects them (its job and
    instance variables too), and the same scope without the instance variable."""
    return partial(common.sel, scope=exporter_scope(slo)), exporter_scope(slo, instance=False)


def build(slo: SLO, config: RuleConfig) -> g.Dashboard:
    sel, job_scope = _selectors(slo)
    limit = float(config.memory_used_ratio_max)
    used, maxmem = sel(m.REDIS_MEMORY_USED), sel(m.REDIS_MEMORY_MAX)
    redis = f'layer="{m.LAYER_REDIS}"'

    # the per-type series (cache_keys, cache_size_bytes, cache_evictions_total) carry
    # no instance of their own: Prometheus gives them the exporter's address, never
    # the Redis one the instance variable lists, so they are filtered by job only
    def by_type(spec: m.MetricSpec, extra: str, *, rate: bool) -> str:
        inner = sel(spec, extra, scope=job_scope)
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
        stat("Keys (sampled estimate)", f"sum({sel(m.CACHE_KEYS, redis, scope=job_scope)})",
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
        *topology_panels(slo, config),
    ]  # fmt: skip
    return dashboard(
        slo,
        TITLE,
        "Redis INFO and the exporter's per-type estimates (keys, size, evictions).",
        panels,
        ["cache", "redis"],
        variables=("exporter_job", "instance"),
        instance_from=f"{m.REDIS_UP.name}{{{job_scope}}}",
        annotations=[alert_annotation(slo)],
    )


def topology_panels(slo: SLO, config: RuleConfig) -> list[g.Panel]:
    """Replication (links, lag and bytes behind per replica), Redis Cluster (state,
    slots, nodes by role), Sentinel (master status, Sentinels and replicas ok against
    quorum), clients against maxclients and persistence (last save, rewrite, age)."""
    sel, _ = _selectors(slo)
    lag_max = float(config.replication_lag_seconds_max)
    clients_max = float(config.clients_used_ratio_max)
    link, lag = sel(m.REDIS_MASTER_LINK_UP), sel(m.REDIS_CONNECTED_SLAVE_LAG)
    status = sel(m.REDIS_SENTINEL_MASTER_STATUS)
    replica = "{{instance}} -> {{slave_ip}}:{{slave_port}}"
    behind = (f"{sel(t.MASTER_REPL_OFFSET)} - on (job, instance) group_right "
              f"{sel(m.REDIS_CONNECTED_SLAVE_OFFSET)}")
    clients = f"{sel(m.REDIS_CONNECTED_CLIENTS)} / ({sel(t.CONFIG_MAXCLIENTS)} > 0)"
    up_down = steps("red", (1.0, "green"))
    master = "{{master_name}}"
    return [
        stat("Replica links up (replicas only)", f"min({link})", unit="none",
             thresholds=up_down, width=6,
             description="1 when every replica's link to its master is up; no data on a "
                         "Redis that is no replica.",
             links=runbook_links(config, c.ALERT_REPLICA_LINK_DOWN)),
        stat("Cluster state ok (cluster only)", f"min({sel(t.CLUSTER_STATE)})", unit="none",
             thresholds=up_down, width=6,
             links=runbook_links(config, c.ALERT_CLUSTER_STATE_FAIL)),
        stat("Sentinel: masters ok (Sentinel only)",
             f"min(max without ({', '.join(t.SENTINEL_TRANSIENT)}) ({status}))", unit="none",
             thresholds=up_down, width=6,
             links=runbook_links(config, c.ALERT_SENTINEL_MASTER_DOWN)),
        stat("Clients of maxclients", f"max({clients})",
             thresholds=steps("green", (clients_max, "red")), width=6,
             links=runbook_links(config, c.ALERT_CLIENTS_NEAR_MAX)),
        timeseries("Replication: replica link to its master (1 = up)",
                   [(link, "{{instance}} -> {{master_host}}:{{master_port}}")], unit="none",
                   value_min=0, value_max=1,
                   links=runbook_links(config, c.ALERT_REPLICA_LINK_DOWN)),
        timeseries("Replication: lag per replica (master's view)", [(lag, replica)], unit="s",
                   thresholds=steps("green", (lag_max, "red")),
                   description="Seconds since each replica last acknowledged (it does every "
                               "second).",
                   links=runbook_links(config, c.ALERT_REPLICATION_LAG)),
        timeseries("Replication: bytes behind per replica", [(behind, replica)],
                   unit="bytes",
                   description="The master's replication offset minus the offset each "
                               "replica acknowledged."),
        timeseries("Cluster: state per node (1 = ok)",
                   [(sel(t.CLUSTER_STATE), "{{instance}}")], unit="none",
                   value_min=0, value_max=1,
                   links=runbook_links(config, c.ALERT_CLUSTER_STATE_FAIL)),
        timeseries("Cluster: hash slots",
                   [(f"max({sel(t.CLUSTER_SLOTS_OK)})", "ok"),
                    (f"max({sel(t.CLUSTER_SLOTS_PFAIL)})", "pfail (suspected down)"),
                    (f"max({sel(t.CLUSTER_SLOTS_FAIL)})", "fail (down)")], unit="none",
                   description="The worst view any selected node reports.",
                   links=runbook_links(config, c.ALERT_CLUSTER_SLOTS_FAIL,
                                       c.ALERT_CLUSTER_SLOTS_PFAIL)),
        timeseries("Cluster: nodes by role and state",
                   [(f"count by (role, state) ({sel(m.REDIS_CLUSTER_NODE)})",
                     "{{role}} {{state}}")], unit="none"),
        timeseries("Sentinel: master status (1 = ok)",
                   [(f"max without (master_address) ({status})",
                     f"{master} {{{{master_status}}}} ({{{{instance}}}})")], unit="none",
                   value_min=0, value_max=1,
                   links=runbook_links(config, c.ALERT_SENTINEL_MASTER_DOWN)),
        timeseries("Sentinel: Sentinels and replicas ok against quorum",
                   [(sel(m.REDIS_SENTINEL_MASTER_OK_SENTINELS), f"Sentinels ok {master}"),
                    (sel(t.SENTINEL_QUORUM), f"quorum {master}"),
                    (sel(m.REDIS_SENTINEL_MASTER_OK_SLAVES), f"replicas ok {master}")],
                   unit="none", links=runbook_links(config, c.ALERT_SENTINEL_QUORUM)),
        timeseries("Persistence: last RDB save and AOF rewrite (1 = ok)",
                   [(sel(t.RDB_LAST_BGSAVE_STATUS), "RDB save {{instance}}"),
                    (sel(t.AOF_LAST_REWRITE_STATUS), "AOF rewrite {{instance}}")],
                   unit="none", value_min=0, value_max=1,
                   links=runbook_links(config, c.ALERT_RDB_SAVE_FAILED,
                                       c.ALERT_AOF_REWRITE_FAILED)),
        timeseries("Persistence: time since the last RDB save",
                   [(f"time() - {sel(t.RDB_LAST_SAVE)}", "{{instance}}")], unit="s",
                   description="Writes not yet saved are at risk on a restart: "
                               f"{t.RDB_CHANGES.name}."),
    ]  # fmt: skip
