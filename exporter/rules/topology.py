"""Alerts on the Redis topology: replication, Redis Cluster, Sentinel, clients, persistence.

Each alert reads a family that only exists where its topology does (a replica's
``redis_master_link_up``, a master's ``redis_connected_slave_lag_seconds``, a
cluster node's ``redis_cluster_*``, a Sentinel's ``redis_sentinel_master_*``), so
a standalone Redis never matches it: no ``and on (...)`` guards are needed.
All are gauges held for a ``for:`` (no ``rate()``), so a fresh series or a
Prometheus without history cannot trip them.  Metric names come from
:mod:`exporter.metrics` (looked up by name where it defines them inline).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from exporter import metrics as m
from exporter import sli
from exporter.rules import conventions as c
from exporter.rules.model import Group, Rule, decimal, number
from exporter.slo import format_duration

if TYPE_CHECKING:  # builders imports this module
    from exporter.rules.builders import Context

#: every family the INFO, Sentinel and cluster collectors emit, by name
_FAMILIES = {spec.name: spec for spec in (*m.REDIS_METRICS, *m.CLUSTER_METRICS)}


def spec(name: str) -> m.MetricSpec:
    """The family ``name`` as :mod:`exporter.metrics` defines it (a typo fails here)."""
    try:
        return _FAMILIES[name]
    except KeyError:
        raise ValueError(f"exporter.metrics defines no family {name!r}") from None


MASTER_REPL_OFFSET = spec("redis_master_repl_offset")
CLUSTER_STATE = spec("redis_cluster_state")
CLUSTER_SLOTS_OK = spec("redis_cluster_slots_ok")
CLUSTER_SLOTS_FAIL = spec("redis_cluster_slots_fail")
CLUSTER_SLOTS_PFAIL = spec("redis_cluster_slots_pfail")
CONFIG_MAXCLIENTS = spec("redis_config_maxclients")
RDB_LAST_BGSAVE_STATUS = spec("redis_rdb_last_bgsave_status")
RDB_LAST_SAVE = spec("redis_rdb_last_save_timestamp_seconds")
RDB_CHANGES = spec("redis_rdb_changes_since_last_save")
AOF_LAST_REWRITE_STATUS = spec("redis_aof_last_bgrewrite_status")
SENTINEL_QUORUM = spec("redis_sentinel_master_setting_ckquorum")

#: labels of Sentinel's master status that change while a failover runs: the alert
#: holds across sdown -> odown -> new address instead of restarting its ``for:``
SENTINEL_TRANSIENT = ("master_status", "master_address")


def _percent(ratio: float) -> str:
    return f"{number(decimal(ratio) * 100)}%"


def topology_alerts(ctx: Context) -> Group:
    """Replica link and lag, cluster state and slots, Sentinel's master and quorum,
    clients near ``maxclients``, failed RDB saves and AOF rewrites."""
    cfg, exp = ctx.config, ctx.exp
    ticket, page = (("severity", c.SEVERITY_TICKET),), (("severity", c.SEVERITY_PAGE),)
    link = sli.selector(m.REDIS_MASTER_LINK_UP, exp)
    lag = sli.selector(m.REDIS_CONNECTED_SLAVE_LAG, exp)
    status = sli.selector(m.REDIS_SENTINEL_MASTER_STATUS, exp)
    ok_sentinels = sli.selector(m.REDIS_SENTINEL_MASTER_OK_SENTINELS, exp)
    sentinels = sli.selector(m.REDIS_SENTINEL_MASTER_SENTINELS, exp)
    quorum = sli.selector(SENTINEL_QUORUM, exp)
    clients = sli.selector(m.REDIS_CONNECTED_CLIENTS, exp)
    maxclients = sli.selector(CONFIG_MAXCLIENTS, exp)
    lag_max = number(cfg.replication_lag_seconds_max)
    clients_max = float(cfg.clients_used_ratio_max)
    link_for, lag_for = timedelta(minutes=2), timedelta(minutes=5)
    rules = [
        Rule(
            alert=c.ALERT_REPLICA_LINK_DOWN,
            expr=f"{link} == 0",
            for_=ctx.for_(link_for),
            labels=ticket,
            annotations=(
                (
                    "summary",
                    "Replica {{ $labels.instance }} lost its master "
                    "{{ $labels.master_host }}:{{ $labels.master_port }}",
                ),
                (
                    "description",
                    "The replication link of Redis {{ $labels.instance }} to its master "
                    "{{ $labels.master_host }}:{{ $labels.master_port }} has been down for "
                    f"{format_duration(link_for)} ({m.REDIS_MASTER_LINK_UP.name} = "
                    "{{ $value }}): it serves ever staler data and cannot take over.",
                ),
            ),
        ),
        Rule(
            alert=c.ALERT_REPLICATION_LAG,
            expr=f"{lag} > {lag_max}",
            for_=ctx.for_(lag_for),
            labels=ticket,
            annotations=(
                (
                    "summary",
                    "Replica {{ $labels.slave_ip }}:{{ $labels.slave_port }} of "
                    "{{ $labels.instance }} lags",
                ),
                (
                    "description",
                    "Redis {{ $labels.instance }}'s replica {{ $labels.slave_ip }}:"
                    "{{ $labels.slave_port }} last acknowledged {{ $value }} s ago (threshold "
                    f"{lag_max} s, for {format_duration(lag_for)}): reads from it are stale "
                    "and a failover to it would lose writes.",
                ),
            ),
        ),
        Rule(
            alert=c.ALERT_CLUSTER_STATE_FAIL,
            expr=f"{sli.selector(CLUSTER_STATE, exp)} == 0",
            for_=ctx.for_(timedelta(minutes=1)),
            labels=page,
            annotations=(
                ("summary", "Redis Cluster node {{ $labels.instance }} reports state fail"),
                (
                    "description",
                    "Cluster node {{ $labels.instance }} has reported cluster_state:fail for "
                    f"{format_duration(timedelta(minutes=1))} ({CLUSTER_STATE.name} = "
                    "{{ $value }}): it refuses queries, so cache calls routed to it fail.",
                ),
            ),
        ),
        Rule(
            alert=c.ALERT_CLUSTER_SLOTS_FAIL,
            expr=f"{sli.selector(CLUSTER_SLOTS_FAIL, exp)} > 0",
            for_=ctx.for_(timedelta(minutes=1)),
            labels=page,
            annotations=(
                ("summary", "Redis Cluster slots down, seen by {{ $labels.instance }}"),
                (
                    "description",
                    "{{ $value }} hash slots belong to masters the cluster agrees are down "
                    "(as node {{ $labels.instance }} sees it) and no replica took over: keys "
                    "in them cannot be read or written.",
                ),
            ),
        ),
        Rule(
            alert=c.ALERT_CLUSTER_SLOTS_PFAIL,
            expr=f"{sli.selector(CLUSTER_SLOTS_PFAIL, exp)} > 0",
            for_=ctx.for_(timedelta(minutes=5)),
            labels=ticket,
            annotations=(
                ("summary", "Redis Cluster node {{ $labels.instance }} suspects slots down"),
                (
                    "description",
                    "Node {{ $labels.instance }} has suspected the masters of {{ $value }} hash "
                    f"slots down (pfail) for {format_duration(timedelta(minutes=5))} without the "
                    "cluster agreeing: a network partition or an overloaded node.",
                ),
            ),
        ),
        Rule(
            alert=c.ALERT_SENTINEL_MASTER_DOWN,
            expr=f"max without ({', '.join(SENTINEL_TRANSIENT)}) ({status}) == 0",
            for_=ctx.for_(timedelta(minutes=1)),
            labels=page,
            comment=(
                "the status word and the address are labels that change during a failover: "
                "left out so the alert holds until Sentinel sees a master ok again"
            ),
            annotations=(
                (
                    "summary",
                    "Sentinel {{ $labels.instance }} sees master {{ $labels.master_name }} down",
                ),
                (
                    "description",
                    "Sentinel {{ $labels.instance }} has not seen master "
                    "{{ $labels.master_name }} ok for "
                    f"{format_duration(timedelta(minutes=1))} "
                    f"({m.REDIS_SENTINEL_MASTER_STATUS.name} = {{{{ $value }}}}), longer than "
                    "a failover takes: "
                    "writes fail until a replica is promoted.",
                ),
            ),
        ),
        Rule(
            alert=c.ALERT_SENTINEL_QUORUM,
            expr=(f"{ok_sentinels} < {quorum}\nor\n{ok_sentinels} < floor({sentinels} / 2) + 1"),
            for_=ctx.for_(timedelta(minutes=5)),
            labels=ticket,
            comment=(
                "Sentinel needs quorum sentinels to agree a master is down and a majority "
                "of all of them to authorize the failover"
            ),
            annotations=(
                (
                    "summary",
                    "Too few Sentinels for master {{ $labels.master_name }} to fail over",
                ),
                (
                    "description",
                    "Sentinel {{ $labels.instance }} sees {{ $value }} Sentinels up for master "
                    "{{ $labels.master_name }}, fewer than its quorum or a majority: if the "
                    "master fails now, no failover happens.",
                ),
            ),
        ),
        Rule(
            alert=c.ALERT_CLIENTS_NEAR_MAX,
            expr=f"{clients}\n/\n({maxclients} > 0)\n> {number(cfg.clients_used_ratio_max)}",
            for_=ctx.for_(timedelta(minutes=5)),
            labels=ticket,
            annotations=(
                ("summary", "Redis {{ $labels.instance }} clients near maxclients"),
                (
                    "description",
                    "Redis {{ $labels.instance }} has {{ $value | humanizePercentage }} of "
                    f"maxclients connected (threshold {_percent(clients_max)}): new "
                    "connections are refused once it is reached.",
                ),
            ),
        ),
        Rule(
            alert=c.ALERT_RDB_SAVE_FAILED,
            expr=f"{sli.selector(RDB_LAST_BGSAVE_STATUS, exp)} == 0",
            for_=ctx.for_(timedelta(minutes=1)),
            labels=ticket,
            annotations=(
                ("summary", "Redis {{ $labels.instance }}'s last RDB save failed"),
                (
                    "description",
                    "The last background RDB save of Redis {{ $labels.instance }} failed "
                    f"({RDB_LAST_BGSAVE_STATUS.name} = {{{{ $value }}}}): a restart loses "
                    "every write since the last good save, and with stop-writes-on-bgsave-"
                    "error (the default) Redis refuses writes.",
                ),
            ),
        ),
        Rule(
            alert=c.ALERT_AOF_REWRITE_FAILED,
            expr=f"{sli.selector(AOF_LAST_REWRITE_STATUS, exp)} == 0",
            for_=ctx.for_(timedelta(minutes=1)),
            labels=ticket,
            annotations=(
                ("summary", "Redis {{ $labels.instance }}'s last AOF rewrite failed"),
                (
                    "description",
                    "The last AOF rewrite of Redis {{ $labels.instance }} failed "
                    f"({AOF_LAST_REWRITE_STATUS.name} = {{{{ $value }}}}): the AOF keeps "
                    "growing and restarts replay ever more of it.",
                ),
            ),
        ),
    ]
    return Group(c.GROUP_TOPOLOGY, tuple(rules))
