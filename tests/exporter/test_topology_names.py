"""The names public Redis monitoring content queries, served on every topology.

The list below was derived by reading the queries of the Go redis_exporter's
redis-mixin (alerts and dashboard), grafana/jsonnet-libs' redis-mixin (alerts and
overview dashboard), the Redis rules of awesome-prometheus-alerts and the Bitnami
/ prometheus-community chart alerts: each metric name and the labels they select,
group or template on (names are facts; none of those files is copied here).
Each name is tagged with the kinds of server it applies to: a replica, a master
with a replica, a Sentinel, a cluster-enabled node.  The test starts each for real
and asserts our INFO collector serves every name that applies, with those labels.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter.collectors.redis_info import RedisInfoCollector
from tests.support.processes import RedisServer, SentinelServer, free_port
from tests.support.topology import make_single_node_cluster, wait_linked, wait_until

REPLICA, MASTER, SENTINEL, CLUSTER = "replica", "master", "sentinel", "cluster"
SERVERS = (REPLICA, MASTER, CLUSTER)  # every redis-server that holds data
EVERY = (*SERVERS, SENTINEL)


@dataclass(frozen=True)
class Queried:
    """One metric the content queries, the labels it reads, where it applies."""

    name: str
    labels: tuple[str, ...] = ()
    applies: tuple[str, ...] = SERVERS


CONTENT: tuple[Queried, ...] = (
    # health and identity (every mixin; the topology stats count roles and modes)
    Queried("redis_up", applies=EVERY),
    Queried("redis_instance_info", ("role", "redis_mode", "redis_version"), EVERY),
    Queried("redis_instance_info", ("maxmemory_policy",)),
    Queried("redis_uptime_in_seconds", applies=EVERY),
    # memory (out-of-memory alerts divide by system memory or maxmemory)
    Queried("redis_memory_used_bytes"),
    Queried("redis_memory_max_bytes"),
    Queried("redis_total_system_memory_bytes"),
    Queried("redis_mem_fragmentation_ratio"),
    # clients and connections (too many connections: against maxclients)
    Queried("redis_connected_clients", applies=EVERY),
    Queried("redis_blocked_clients", applies=EVERY),
    Queried("redis_config_maxclients"),
    Queried("redis_rejected_connections_total", applies=EVERY),
    # traffic, keys, evictions
    Queried("redis_commands_processed_total", applies=EVERY),
    Queried("redis_commands_total", ("cmd",)),  # a Sentinel has no commandstats
    Queried("redis_commands_duration_seconds_total", ("cmd",)),
    Queried("redis_net_input_bytes_total", applies=EVERY),
    Queried("redis_net_output_bytes_total", applies=EVERY),
    Queried("redis_keyspace_hits_total"),
    Queried("redis_keyspace_misses_total"),
    Queried("redis_evicted_keys_total"),
    Queried("redis_expired_keys_total"),
    Queried("redis_db_keys", ("db",)),
    Queried("redis_db_keys_expiring", ("db",)),
    # persistence (missing backup; AOF size panel)
    Queried("redis_rdb_last_save_timestamp_seconds"),
    Queried("redis_aof_current_size_bytes"),
    # replication (lost replicas, flapping, link down, sync, lag)
    Queried("redis_connected_slaves"),
    Queried("redis_master_repl_offset"),
    Queried("redis_master_link_up", ("master_host", "master_port"), (REPLICA,)),
    Queried("redis_master_last_io_seconds_ago", ("master_host", "master_port"), (REPLICA,)),
    Queried("redis_master_sync_in_progress", ("master_host", "master_port"), (REPLICA,)),
    Queried("redis_slave_repl_offset", ("master_host", "master_port"), (REPLICA,)),
    Queried("redis_slave_info", ("master_host", "master_port", "read_only"), (REPLICA,)),
    # cluster (state not ok, slots failing)
    Queried("redis_cluster_state", applies=(CLUSTER,)),
    Queried("redis_cluster_slots_fail", applies=(CLUSTER,)),
    Queried("redis_cluster_slots_pfail", applies=(CLUSTER,)),
    Queried("redis_cluster_slots_ok", applies=(CLUSTER,)),
    Queried("redis_cluster_slots_assigned", applies=(CLUSTER,)),
    Queried("redis_cluster_known_nodes", applies=(CLUSTER,)),
    # Sentinel (master down, failover, quorum)
    Queried("redis_sentinel_masters", applies=(SENTINEL,)),
    Queried(
        "redis_sentinel_master_status",
        ("master_name", "master_address", "master_status"),
        (SENTINEL,),
    ),
    Queried("redis_sentinel_master_slaves", ("master_name", "master_address"), (SENTINEL,)),
    Queried("redis_sentinel_master_sentinels", ("master_name", "master_address"), (SENTINEL,)),
    Queried("redis_sentinel_master_ok_slaves", ("master_name", "master_address"), (SENTINEL,)),
    Queried("redis_sentinel_master_ok_sentinels", ("master_name", "master_address"), (SENTINEL,)),
)

Served = dict[str, list[dict[str, str]]]


def scrape(url: str) -> Served:
    """Sample name -> label sets, from one scrape of our INFO collector."""
    registry = CollectorRegistry()
    collector = RedisInfoCollector(url, instance="under-test")
    registry.register(collector)
    text = generate_latest(registry).decode()
    collector.close()
    served: Served = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            served.setdefault(s.name, []).append(s.labels)
    return served


@dataclass
class Topology:
    master: RedisServer
    replica: RedisServer
    sentinel: SentinelServer
    cluster: RedisServer

    def url(self, kind: str) -> str:
        return {
            MASTER: self.master.url,
            REPLICA: self.replica.url,
            SENTINEL: self.sentinel.url,
            CLUSTER: self.cluster.url,
        }[kind]


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    """A master (AOF on) with a linked replica, a Sentinel watching them and a
    single-node cluster with every slot, each holding keys."""
    base = tmp_path_factory.mktemp("topology")
    started: list[RedisServer | SentinelServer] = []

    def server(name: str, *extra: str) -> RedisServer:
        found = RedisServer(Path(base / name), extra=["--appendonly", "yes", *extra]).start()
        started.append(found)
        return found

    try:
        master = server("master")
        replica = server("replica", "--replicaof", "127.0.0.1", str(master.port))
        # the bus port defaults to port + 10000, past 65535 for a high free port
        cluster = server("cluster", "--cluster-enabled", "yes", "--cluster-port", str(free_port()))
        sentinel = SentinelServer(base / "sentinel", master.port).start()
        started.append(sentinel)
        make_single_node_cluster(cluster.port)
        for port in (master.port, cluster.port):
            client = redis.Redis(port=port)
            client.set("session:1", "x", ex=600)
            client.close()
        wait_linked(replica.port)
        wait_until(lambda: redis.Redis(port=replica.port).dbsize() == 1, what="key replicated")
        wait_until(
            lambda: scrape(sentinel.url).get("redis_sentinel_master_ok_slaves"),
            what="Sentinel knows the replica",
        )
        yield Topology(master, replica, sentinel, cluster)
    finally:
        for process in reversed(started):
            process.stop()


@pytest.mark.parametrize("kind", [REPLICA, MASTER, SENTINEL, CLUSTER])
def test_each_topology_serves_every_name_the_content_queries(topology: Topology, kind: str) -> None:
    served = scrape(topology.url(kind))
    missing = []
    for item in CONTENT:
        if kind not in item.applies:
            continue
        label_sets = served.get(item.name, [])
        if not any(set(item.labels) <= set(labels) for labels in label_sets):
            missing.append(f"{item.name}{{{','.join(item.labels)}}}")
    assert not missing, f"{kind} does not serve: {missing}"


def _value(url: str, name: str, **labels: str) -> float | None:
    registry = CollectorRegistry()
    collector = RedisInfoCollector(url, instance="under-test")
    registry.register(collector)
    value = registry.get_sample_value(name, {"instance": "under-test", **labels})
    collector.close()
    return value


def test_values_say_what_the_alerts_read(topology: Topology) -> None:
    master = f"{topology.master.port}"
    link = {"master_host": "127.0.0.1", "master_port": master}
    assert _value(topology.url(REPLICA), "redis_master_link_up", **link) == 1.0
    assert _value(topology.url(REPLICA), "redis_master_sync_in_progress", **link) == 0.0
    assert _value(topology.url(REPLICA), "redis_slave_info", **link, read_only="1") == 1.0
    assert _value(topology.url(CLUSTER), "redis_cluster_state") == 1.0
    assert _value(topology.url(CLUSTER), "redis_cluster_slots_ok") == 16384.0
    assert _value(topology.url(MASTER), "redis_config_maxclients") == 10000.0
    assert _value(topology.url(MASTER), "cache_exporter_redis_config_up") == 1.0
    sentinel = {"master_name": "mymaster", "master_address": f"127.0.0.1:{master}"}
    assert (
        _value(
            topology.url(SENTINEL), "redis_sentinel_master_status", **sentinel, master_status="ok"
        )
        == 1.0
    )
    assert _value(topology.url(SENTINEL), "redis_sentinel_master_slaves", **sentinel) == 1.0
    assert (
        _value(topology.url(SENTINEL), "redis_sentinel_master_setting_ckquorum", **sentinel) == 1.0
    )


def test_a_master_reports_offset_and_lag_per_replica(topology: Topology) -> None:
    served = scrape(topology.url(MASTER))
    replica = {"slave_ip": "127.0.0.1", "slave_port": str(topology.replica.port)}
    for name in ("redis_connected_slave_offset_bytes", "redis_connected_slave_lag_seconds"):
        assert any(replica.items() <= labels.items() for labels in served[name]), name
        assert all(labels["slave_state"] == "online" for labels in served[name]), name
