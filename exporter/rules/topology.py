"""Alerts on the Redis topology: replication, Redis Cluster, Sentinel, clients, persistence.

The alerts are a table (:data:`TOPOLOGY`), one row each, and one builder
(:func:`gauge_alert`) turns a row into a rule.  A row says what it watches
(a PromQL template over family names), for how long, how severe it is, and its
**scope**: how many alerts one condition raises.

- ``NODE``: one per Redis node that reports it (a replica's link, a node's
  clients, its last save): the series as served, ``instance`` included.
- ``CLUSTER``: one per Redis Cluster.  Every node reports the cluster's state and
  its failed slots, so the nodes' series are aggregated by the exporter's ``job``
  and the service's placement labels (``service.group_by``): a platform with
  several clusters in one service tells them apart by a placement label (or
  one exporter job each).
- ``MASTER``: one per master that Sentinel monitors, whatever number of
  Sentinels the exporters read: aggregated by those labels and ``master_name``
  (the master's address and status word change during a failover, so they are
  aggregated away too).  The aggregate is the best view any Sentinel has
  (``max``): a Sentinel cut off from the others sees less than the group that
  would run a failover.

Each alert reads a family that only exists where its topology does (a replica's
``redis_master_link_up``, a master's ``redis_connected_slave_lag_seconds``, a
cluster node's ``redis_cluster_*``, a Sentinel's ``redis_sentinel_master_*``,
persistence fields only when INFO has them), so a standalone Redis never matches
it: no ``and on (...)`` guards are needed.  All are gauges held for a ``for:`` (no
``rate()``), so a fresh series or a Prometheus without history cannot trip them.

Templates: in ``expr``, ``{family_name}`` is that family's selector (a name
:mod:`exporter.metrics` does not define fails here), ``{by}`` the scope's
aggregation labels and ``{lag_max}``, ``{clients_max}`` the thresholds of
:class:`~exporter.rules.config.RuleConfig`.  In the annotations, ``{value}`` is the
alert's value, ``{percent}`` the value as a percentage, ``{for}`` the ``for:``
duration, ``{where}`` the aggregation labels and their values, thresholds as in
``expr``, and any other ``{name}`` the alert's label ``name``.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
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


# families the Redis dashboard (exporter/dashboards/redis_server.py) reads as well
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

#: labels of Sentinel's master status that change while a failover runs (a ``MASTER``
#: alert aggregates them away, so it holds across sdown -> odown -> new address)
SENTINEL_TRANSIENT = ("master_status", "master_address")


class Scope(Enum):
    """How many alerts one condition raises (see the module docstring)."""

    NODE = "node"
    CLUSTER = "cluster"
    MASTER = "master"


#: labels a ``MASTER`` alert keeps besides the cluster's
SENTINEL_MASTER_LABELS = ("master_name",)


@dataclass(frozen=True)
class TopologyAlert:
    """One row of the table: an alert on gauges, held for ``for_``."""

    alert: str
    scope: Scope
    severity: str
    for_: timedelta
    #: PromQL template (see the module docstring)
    expr: str
    summary: str
    description: str
    #: rendered above the rule: why the expression looks the way it does
    comment: str | None = None

    def families(self) -> tuple[str, ...]:
        """The family names ``expr`` reads, in order."""
        fields = (f for _, f, _, _ in string.Formatter().parse(self.expr) if f)
        return tuple(dict.fromkeys(f for f in fields if f in _FAMILIES))


PAGE, TICKET = c.SEVERITY_PAGE, c.SEVERITY_TICKET
MINUTE = timedelta(minutes=1)

#: every topology alert, in the order the group lists them
# fmt: off
TOPOLOGY: tuple[TopologyAlert, ...] = (
    TopologyAlert(
        c.ALERT_REPLICA_LINK_DOWN, Scope.NODE, TICKET, 2 * MINUTE,
        "{redis_master_link_up} == 0",
        summary="Replica {instance} lost its master {master_host}:{master_port}",
        description=(
            "The replication link of Redis {instance} to its master {master_host}:"
            "{master_port} has been down for {for} (redis_master_link_up = {value}): it "
            "serves ever staler data and cannot take over."
        ),
    ),
    TopologyAlert(
        c.ALERT_REPLICATION_LAG, Scope.NODE, TICKET, 5 * MINUTE,
        "{redis_connected_slave_lag_seconds} > {lag_max}",
        summary="Replica {slave_ip}:{slave_port} of {instance} lags",
        description=(
            "Redis {instance}'s replica {slave_ip}:{slave_port} last acknowledged {value} s "
            "ago (threshold {lag_max} s, for {for}): reads from it are stale and a failover "
            "to it would lose writes."
        ),
    ),
    TopologyAlert(
        c.ALERT_CLUSTER_STATE_FAIL, Scope.CLUSTER, PAGE, MINUTE,
        "count by ({by}) ({redis_cluster_state} == 0)",
        summary="Redis Cluster ({where}): {value} nodes report state fail",
        description=(
            "{value} nodes of the Redis Cluster of {where} have reported cluster_state:fail "
            "for {for} (redis_cluster_state == 0): they refuse queries, so cache calls "
            "routed to them fail."
        ),
        comment="every node reports the cluster's state: one alert per cluster, valued "
        "by the number of nodes that say fail",
    ),
    TopologyAlert(
        c.ALERT_CLUSTER_SLOTS_FAIL, Scope.CLUSTER, PAGE, MINUTE,
        "max by ({by}) ({redis_cluster_slots_fail}) > 0",
        summary="Redis Cluster ({where}): {value} hash slots down",
        description=(
            "{value} hash slots of the Redis Cluster of {where} belong to masters the "
            "cluster agrees are down (the most any node reports) and no replica took "
            "over: keys in them cannot be read or written."
        ),
        comment="every node reports the failed slots: one alert per cluster, the most any "
        "node reports",
    ),
    TopologyAlert(
        c.ALERT_CLUSTER_SLOTS_PFAIL, Scope.CLUSTER, TICKET, 5 * MINUTE,
        "max by ({by}) ({redis_cluster_slots_pfail}) > 0",
        summary="Redis Cluster ({where}): {value} hash slots suspected down",
        description=(
            "Nodes of the Redis Cluster of {where} have suspected the masters of up to "
            "{value} hash slots down (pfail) for {for} without the cluster agreeing: a "
            "network partition or an overloaded node."
        ),
        comment="one alert per cluster: the most slots any node suspects",
    ),
    TopologyAlert(
        c.ALERT_SENTINEL_MASTER_DOWN, Scope.MASTER, PAGE, MINUTE,
        "max by ({by}) ({redis_sentinel_master_status}) == 0",
        summary="Sentinels see master {master_name} down ({where})",
        description=(
            "No Sentinel has seen master {master_name} ({where}) ok for {for} "
            "(redis_sentinel_master_status = {value}), longer than a failover takes: "
            "writes fail until a replica is promoted."
        ),
        comment="one alert per master, whatever number of Sentinels report it; the status "
        "word and the address are labels that change during a failover, so they are "
        "aggregated away and the alert holds until a Sentinel sees a master ok again",
    ),
    TopologyAlert(
        c.ALERT_SENTINEL_QUORUM, Scope.MASTER, TICKET, 5 * MINUTE,
        "max by ({by}) ({redis_sentinel_master_ok_sentinels})\n"
        "< max by ({by}) ({redis_sentinel_master_setting_ckquorum})\n"
        "or\n"
        "max by ({by}) ({redis_sentinel_master_ok_sentinels})\n"
        "< floor(max by ({by}) ({redis_sentinel_master_sentinels}) / 2) + 1",
        summary="Too few Sentinels for master {master_name} to fail over ({where})",
        description=(
            "At best {value} Sentinels are up for master {master_name} ({where}), fewer than "
            "its quorum or a majority of the Sentinels watching it: if the master fails "
            "now, no failover happens."
        ),
        comment="Sentinel needs quorum Sentinels to agree a master is down and a majority "
        "of all of them to authorize the failover; one alert per master",
    ),
    TopologyAlert(
        c.ALERT_SENTINEL_NO_REPLICA, Scope.MASTER, TICKET, 5 * MINUTE,
        "max by ({by}) ({redis_sentinel_master_ok_slaves}) == 0",
        summary="No healthy replica of master {master_name} to promote ({where})",
        description=(
            "No Sentinel has seen a replica of master {master_name} ({where}) ok for {for} "
            "(redis_sentinel_master_ok_slaves = {value}): if the master fails, Sentinel "
            "has nothing to promote and writes fail until it is back."
        ),
        comment="one alert per master: the most healthy replicas any Sentinel sees",
    ),
    TopologyAlert(
        c.ALERT_CLIENTS_NEAR_MAX, Scope.NODE, TICKET, 5 * MINUTE,
        "{redis_connected_clients}\n/\n({redis_config_maxclients} > 0)\n> {clients_max}",
        summary="Redis {instance} clients near maxclients",
        description=(
            "Redis {instance} has {percent} of maxclients connected (threshold "
            "{clients_max_percent}): new connections are refused once it is reached."
        ),
    ),
    TopologyAlert(
        c.ALERT_RDB_SAVE_FAILED, Scope.NODE, TICKET, MINUTE,
        "{redis_rdb_last_bgsave_status} == 0",
        summary="Redis {instance}'s last RDB save failed",
        description=(
            "The last background RDB save of Redis {instance} failed "
            "(redis_rdb_last_bgsave_status = {value}): a restart loses every write since "
            "the last good save, and with stop-writes-on-bgsave-error (the default) Redis "
            "refuses writes."
        ),
    ),
    TopologyAlert(
        c.ALERT_AOF_WRITE_FAILED, Scope.NODE, TICKET, MINUTE,
        "{redis_aof_last_write_status} == 0",
        summary="Redis {instance} cannot write its AOF",
        description=(
            "The last write or fsync of Redis {instance}'s append-only file failed "
            "(redis_aof_last_write_status = {value}): Redis refuses every write until one "
            "succeeds (cache writes are dropped), usually a full or failing disk."
        ),
    ),
    TopologyAlert(
        c.ALERT_AOF_REWRITE_FAILED, Scope.NODE, TICKET, MINUTE,
        "{redis_aof_last_bgrewrite_status} == 0",
        summary="Redis {instance}'s last AOF rewrite failed",
        description=(
            "The last AOF rewrite of Redis {instance} failed "
            "(redis_aof_last_bgrewrite_status = {value}): the AOF keeps growing and "
            "restarts replay ever more of it."
        ),
    ),
)
# fmt: on


def scope_labels(group_by: Sequence[str], scope: Scope) -> tuple[str, ...]:
    """The labels an alert of ``scope`` keeps when it aggregates (none for ``NODE``):
    the exporter's ``job``, the service's placement labels ``group_by``, and for a
    ``MASTER`` alert ``master_name``."""
    if scope is Scope.NODE:
        return ()
    cluster = ("job", *group_by)
    return (*cluster, *SENTINEL_MASTER_LABELS) if scope is Scope.MASTER else cluster


class _Labels(dict[str, str]):
    """Annotation fields: what is not given is the alert's label of that name."""

    def __missing__(self, key: str) -> str:
        return f"{{{{ $labels.{key} }}}}"


def gauge_alert(ctx: Context, row: TopologyAlert) -> Rule:
    """The rule of one row of :data:`TOPOLOGY` for this service and profile."""
    cfg = ctx.config
    by = scope_labels(ctx.slo.service.group_by, row.scope)
    thresholds = {
        "lag_max": number(cfg.replication_lag_seconds_max),
        "clients_max": number(cfg.clients_used_ratio_max),
    }
    fields = {name: sli.selector(spec(name), ctx.exp) for name in row.families()}
    expr = row.expr.format(by=", ".join(by), **thresholds, **fields)
    # the labels that name what the alert is about, after aggregation
    shown = [lab for lab in by if lab not in SENTINEL_MASTER_LABELS]
    text = _Labels(
        value="{{ $value }}",
        percent="{{ $value | humanizePercentage }}",
        where=", ".join(f"{lab} {{{{ $labels.{lab} }}}}" for lab in shown),
        clients_max_percent=f"{number(decimal(float(cfg.clients_used_ratio_max)) * 100)}%",
        **{"for": format_duration(row.for_)},
        **thresholds,
    )
    return Rule(
        alert=row.alert,
        expr=expr,
        for_=ctx.for_(row.for_),
        labels=(("severity", row.severity),),
        annotations=(
            ("summary", row.summary.format_map(text)),
            ("description", row.description.format_map(text)),
        ),
        comment=row.comment,
    )


def topology_alerts(ctx: Context) -> Group:
    """Replica link and lag, cluster state and slots, Sentinel's masters, quorum and
    replicas, clients near ``maxclients``, failed RDB saves, AOF writes and rewrites."""
    return Group(c.GROUP_TOPOLOGY, tuple(gauge_alert(ctx, row) for row in TOPOLOGY))
