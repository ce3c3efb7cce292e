"""``serve --cluster`` against a real Redis Cluster (3 masters, 3 replicas), and the
CLUSTER NODES parser on captured and hostile replies."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import redis
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from exporter.collectors.cluster import (
    ClusterCollector,
    ClusterNode,
    Topology,
    parse_cluster_nodes,
)
from exporter.collectors.redis_info import RedisInfoCollector
from exporter.config import SamplerOptions, Settings, instance_of
from exporter.server import create_app
from exporter.slo import load_slo
from tests.exporter.conftest import promtool_check, sample
from tests.support.cluster import LocalCluster
from tests.support.resp import BASIC_INFO, FakeRedis, basic_handler, bulk, error, info_reply

# --- the parser -----------------------------------------------------------------------

#: CLUSTER NODES of a Redis 7.0 cluster: three masters (one migrating a slot), three
#: replicas (one failed), a node in handshake
CAPTURE = """\
07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@40004,host-a slave \
e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected
67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@40002 master - 0 1426238316232 \
2 connected 5461-10922
292f8b365bb7edb5e285caf0b7e6ddc7265e2f4f 127.0.0.1:30003@40003 master - 0 1426238318243 \
3 connected 10923-16383
6ec23923021cf3ffec47632106199cb7f496ce01 127.0.0.1:30005@40005 slave,fail \
67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 0 1426238316232 5 connected
824fe116063bc5fcf9f4ffd895bc17aee7731ac3 127.0.0.1:30006@40006 slave \
292f8b365bb7edb5e285caf0b7e6ddc7265e2f4f 0 1426238317741 6 connected
e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@40001 myself,master,fail? - 0 0 \
1 connected 0-5459 5460 [5461->-67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1]
1111111111111111111111111111111111111111 127.0.0.1:30007@40007 handshake - 0 0 0 connected
"""


def test_cluster_nodes_of_a_real_capture() -> None:
    topology = parse_cluster_nodes(CAPTURE, "seed")
    assert topology.dropped == 0
    by_port = {n.port: n for n in topology.nodes}
    assert sorted(by_port) == [30001, 30002, 30003, 30004, 30005, 30006]  # no handshake
    assert [n.role for n in topology.nodes] == ["master"] * 3 + ["replica"] * 3  # masters first
    first = by_port[30001]
    assert first.slots == ((0, 5459), (5460, 5460)) and first.state == "pfail"
    assert first.first_slot == 0 and first.address == "127.0.0.1:30001"
    assert by_port[30004].master_id == first.node_id and by_port[30004].host == "127.0.0.1"
    assert by_port[30005].state == "fail"
    shards = topology.shards()
    assert [(m.port, [r.port for r in rs]) for m, rs in shards] == [
        (30001, [30004]),
        (30002, []),  # its only replica failed
        (30003, [30006]),
    ]


@pytest.mark.parametrize(
    "line",
    [
        "short line",
        "abc 127.0.0.1:notaport@1 master - 0 0 1 connected",
        "abc 127.0.0.1:70000@1 master - 0 0 1 connected",
        "abc 127.0.0.1:7000@1 nothing - 0 0 1 connected",
        "abc 127.0.0.1:7000@1 master - 0 0 1 connected 16384",
        "abc 127.0.0.1:7000@1 master - 0 0 1 connected 9-3",
        "abc 127.0.0.1:7000@1 master - 0 0 1 connected x-y",
        "a/b 127.0.0.1:7000@1 master - 0 0 1 connected",
        "abc bad\x00host:7000@1 master - 0 0 1 connected",
        f"{'a' * 65} 127.0.0.1:7000@1 master - 0 0 1 connected",
    ],
    ids=lambda line: line[:40],
)
def test_a_line_that_does_not_parse_is_dropped_and_counted(line: str) -> None:
    topology = parse_cluster_nodes(f"{line}\n", "seed")
    assert topology.nodes == () and topology.dropped == 1


def test_a_node_without_its_own_address_takes_the_seed_host_and_the_cap_holds() -> None:
    lonely = parse_cluster_nodes("abc :6379@16379 myself,master - 0 0 0 connected 0-16383", "h")
    assert lonely.nodes == (ClusterNode("abc", "h", 6379, "master", "", "ok", ((0, 16383),)),)
    many = "\n".join(f"n{i} 10.0.0.1:{1000 + i}@1 master - 0 0 1 connected" for i in range(50))
    capped = parse_cluster_nodes(many, "seed", limit=10)
    assert len(capped.nodes) == 10 and capped.dropped == 40


def test_a_huge_hostile_reply_parses_in_bounded_time() -> None:
    junk = "x" * 1000 + "\n"
    started = time.perf_counter()
    topology = parse_cluster_nodes(junk * 20_000 + CAPTURE, "seed")
    assert time.perf_counter() - started < 2.0
    assert len(topology.nodes) == 6 and topology.dropped == 20_000


# --- a real cluster -------------------------------------------------------------------

FAST_SAMPLER = SamplerOptions(interval=0.2, pause=0.0)


@contextmanager
def cluster_exporter(url: str, **overrides: object) -> Iterator[TestClient]:
    options: dict[str, object] = {
        "redis_url": url, "cluster": True, "scrape_timeout": 4.0, "sampler": FAST_SAMPLER,
        "configure_notifications": True, "cluster_refresh": 5.0,
    }  # fmt: skip
    settings = Settings(**{**options, **overrides})  # type: ignore[arg-type]
    with TestClient(create_app(settings)) as client:
        yield client


def node_roles(text: str) -> dict[str, tuple[str, str]]:
    """instance -> (role, state) from redis_cluster_node_info."""
    found = {}
    for family in text_string_to_metric_families(text):
        if family.name == "redis_cluster_node_info":
            for s in family.samples:
                found[s.labels["instance"]] = (s.labels["role"], s.labels["state"])
    return found


def instances(text: str, name: str) -> set[str]:
    return {
        s.labels["instance"]
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


def scrape_until(client: TestClient, ready: Callable[[str], bool], timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = client.get("/metrics").text
        if ready(text):
            return text
        assert time.monotonic() < deadline, f"never ready; last scrape:\n{text[-3000:]}"
        time.sleep(0.2)


@pytest.fixture
def cluster(redis_cluster: LocalCluster) -> Iterator[LocalCluster]:
    """The session's cluster, whole and empty; whole again after the test."""
    redis_cluster.heal()
    conn = redis.RedisCluster.from_url(redis_cluster.url)
    conn.flushall(target_nodes="primaries")
    conn.close()
    yield redis_cluster
    redis_cluster.heal()


def write_keys(url: str, users: int = 0, sessions_expiring: int = 0) -> None:
    conn = redis.RedisCluster.from_url(url)
    for n in range(users):
        conn.set(f"user:{n}", "x" * 100)
    for n in range(sessions_expiring):
        conn.set(f"session:{n}", "s", px=50)
    conn.close()


def wait_subscribed(client: TestClient, cluster: LocalCluster) -> None:
    """Until every master's eviction tracker receives notifications: expiring probe keys
    (type ``other``) are written until each master has reported one."""
    masters = [f"127.0.0.1:{n.port}" for n in cluster.masters()]
    conn = redis.RedisCluster.from_url(cluster.url)

    def notified(text: str) -> bool:
        for n in range(30):
            conn.set(f"probe:{n}", "p", px=1)
        return all(
            (sample(text, "cache_exporter_notifications_total", instance=a, reason="expired") or 0)
            > 0
            for a in masters
        )

    try:
        scrape_until(client, notified)
    finally:
        conn.close()


def test_one_node_finds_every_node_and_the_sums_cover_every_master(
    cluster: LocalCluster,
) -> None:
    write_keys(cluster.url, users=120)
    seed_url = cluster.nodes[-1].url  # a replica as the seed
    expired = {"layer": "redis", "type": "session", "reason": "expired"}
    with cluster_exporter(seed_url) as client:
        wait_subscribed(client, cluster)
        write_keys(cluster.url, sessions_expiring=40)
        text = scrape_until(
            client,
            lambda t: (
                sample(t, "cache_keys", layer="redis", type="user") == 120
                and sample(t, "cache_evictions_total", **expired) == 40
            ),
        )
        assert client.get("/readyz").status_code == 200
        # /scrape of one cluster node serves its CLUSTER INFO as well
        one = client.get("/scrape", params={"target": seed_url}).text
        assert sample(one, "redis_cluster_state", instance=instance_of(seed_url)) == 1.0
    roles = node_roles(text)
    assert len(roles) == 6
    assert sorted(role for role, _ in roles.values()) == ["master"] * 3 + ["replica"] * 3
    assert all(state == "ok" for _, state in roles.values())
    for node in cluster.nodes:
        inst = f"127.0.0.1:{node.port}"
        assert sample(text, "redis_cluster_state", instance=inst) == 1.0
        assert sample(text, "redis_cluster_slots_ok", instance=inst) == 16384
        assert sample(text, "redis_cluster_known_nodes", instance=inst) == 6
        assert sample(text, "redis_cluster_size", instance=inst) == 3
    # the sums are the masters': one sampler per master, none on the replicas
    masters = {a for a, (role, _) in roles.items() if role == "master"}
    assert instances(text, "cache_exporter_sampler_cycles_total") == masters
    # every node's workers report their health on /metrics, as the cluster has them now
    for address in roles:
        evictions = {"instance": address, "collector": "evictions"}
        assert sample(text, "cache_exporter_collector_up", **evictions) == 1.0
        sampled = {"instance": address, "collector": "keyspace_sampler"}
        assert sample(text, "cache_exporter_collector_up", **sampled) == (
            1.0 if address in masters else None
        )
    assert (sample(text, "cache_size_bytes", layer="redis", type="user") or 0) > 120 * 100
    seed = f"127.0.0.1:{cluster.nodes[-1].port}"
    assert sample(text, "cache_exporter_cluster_nodes", instance=seed, role="replica") == 3
    assert promtool_check(text).returncode == 0, promtool_check(text).stdout


def test_replicas_are_sampled_when_asked(cluster: LocalCluster) -> None:
    write_keys(cluster.url, users=60, sessions_expiring=0)
    with cluster_exporter(cluster.url, cluster_sample_replicas=True) as client:
        text = scrape_until(
            client, lambda t: sample(t, "cache_keys", layer="redis", type="user") == 60
        )
    roles = node_roles(text)
    replicas = {a for a, (role, _) in roles.items() if role == "replica"}
    assert instances(text, "cache_exporter_sampler_cycles_total") == replicas


def test_a_killed_master_is_followed_to_its_promoted_replica(cluster: LocalCluster) -> None:
    """Mid-test a master dies: its node reports redis_up 0 and state fail, its replica
    becomes master in the exporter's view, the per-type sums still count every key,
    and the eviction counters never go down."""
    write_keys(cluster.url, users=90)
    expired = {"layer": "redis", "type": "session", "reason": "expired"}
    with cluster_exporter(cluster.url) as client:
        wait_subscribed(client, cluster)
        write_keys(cluster.url, sessions_expiring=30)
        before = scrape_until(
            client,
            lambda t: (
                sample(t, "cache_keys", layer="redis", type="user") == 90
                and sample(t, "cache_evictions_total", **expired) == 30
            ),
        )
        victim = cluster.masters()[0]
        replica = cluster.replica_of(victim)
        cluster.wait_replicated(victim, replica)
        victim.kill()
        cluster.wait_promoted(replica)
        gone, promoted = f"127.0.0.1:{victim.port}", f"127.0.0.1:{replica.port}"
        assert node_roles(before)[promoted][0] == "replica"
        seen: list[float] = []

        def followed(text: str) -> bool:
            seen.append(sample(text, "cache_evictions_total", **expired) or 0.0)
            roles = node_roles(text)
            return (
                sample(text, "redis_up", instance=gone) == 0.0
                and roles.get(promoted, ("", ""))[0] == "master"
                and roles.get(gone, ("", ""))[1] == "fail"
                and promoted in instances(text, "cache_exporter_sampler_cycles_total")
                and sample(text, "cache_keys", layer="redis", type="user") == 90
            )

        after = scrape_until(client, followed)
        assert seen == sorted(seen) and seen[-1] >= 30  # monotonic through the failover
        assert sample(after, "redis_cluster_state", instance=promoted) == 1.0
        seed = f"127.0.0.1:{cluster.nodes[0].port}"
        ok = sample(after, "cache_exporter_cluster_discoveries_total", instance=seed, result="ok")
        assert ok is not None and ok >= 2  # read again after the failure, not only at start


# --- hostile seeds (a fake server: replies a real cluster node never gives) ----------


def test_a_silent_seed_fails_discovery_within_the_deadline() -> None:
    with FakeRedis(lambda args: None) as fake:
        collector = ClusterCollector(fake.url, load_slo(), instance=fake.address, timeout=0.5,
                                     background=False)  # fmt: skip
        started = time.monotonic()
        families = {f.name: f for f in collector.collect()}
        assert time.monotonic() - started < 2.0
        collector.stop()
    discoveries = families["cache_exporter_cluster_discoveries"].samples
    assert {s.labels["result"]: s.value for s in discoveries} == {"ok": 0.0, "error": 1.0}
    assert collector.topology.nodes == ()
    # no node known: the seed itself is reported down, so redis_up alerts fire
    assert [(s.labels, s.value) for s in families["redis_up"].samples] == [
        ({"instance": fake.address}, 0.0)
    ]


def test_a_garbage_topology_reply_is_dropped_line_by_line_and_counted() -> None:
    good = "abc 127.0.0.1:1@2 myself,master - 0 0 1 connected 0-16383"
    reply = "\n".join(["\x00garbage"] * 100 + [good, "x" * 5000])
    with FakeRedis(lambda args: bulk(reply)) as fake:
        collector = ClusterCollector(fake.url, load_slo(), instance=fake.address, timeout=0.5,
                                     background=False)  # fmt: skip
        assert collector.refresh()
        collector.stop()
    assert [n.address for n in collector.topology.nodes] == ["127.0.0.1:1"]
    assert collector.topology.dropped == 101


def test_the_sums_stay_whole_through_a_slot_migration(cluster: LocalCluster) -> None:
    """Slots and their keys move between masters (redis-cli --cluster reshard): the
    per-node view shows the keys moving, and the per-type sums count every key once."""
    write_keys(cluster.url, users=150)
    with cluster_exporter(cluster.url, cluster_refresh=1.0) as client:
        scrape_until(client, lambda t: sample(t, "cache_keys", layer="redis", type="user") == 150)
        source, target = cluster.masters()[:2]
        inst = f"127.0.0.1:{target.port}"
        before = sample(client.get("/metrics").text, "redis_db_keys", db="db0", instance=inst)
        cluster.reshard(source, target, 3000)
        text = scrape_until(
            client,
            lambda t: (
                (sample(t, "redis_db_keys", db="db0", instance=inst) or 0) > (before or 0)
                and sample(t, "cache_keys", layer="redis", type="user") == 150
            ),
        )
    masters = [a for a, (role, _) in node_roles(text).items() if role == "master"]
    assert sum(sample(text, "redis_db_keys", db="db0", instance=a) or 0 for a in masters) == 150


def test_a_node_that_leaves_the_topology_keeps_its_evictions_in_the_sums(
    cluster: LocalCluster,
) -> None:
    """A node forgotten by the cluster takes its tracker with it, not its counts: they
    move to the retired total, so cache_evictions_total never goes down."""
    collector = ClusterCollector(cluster.url, load_slo(), instance="seed", timeout=2.0,
                                 configure_notifications=True, refresh=3600)  # fmt: skip
    collector.start()
    expired = {"layer": "redis", "type": "session", "reason": "expired"}

    def expired_sessions() -> float:
        for family in collector.collect():
            for s in family.samples:
                if s.name == "cache_evictions_total" and s.labels == expired:
                    return s.value
        return 0.0

    conn = redis.RedisCluster.from_url(cluster.url)
    try:
        deadline = time.monotonic() + 30
        while not expired_sessions():  # until the trackers attribute expirations
            for n in range(30):
                conn.set(f"session:{n}", "s", px=1)
            time.sleep(0.3)
            assert time.monotonic() < deadline, "the trackers never attributed"
        time.sleep(0.5)  # every expiry of the last batch notified
        counted = expired_sessions()
        master = cluster.masters()[0]
        leaving = f"127.0.0.1:{master.port}"
        collector._apply(Topology(tuple(n for n in collector.topology.nodes
                                        if n.address != leaving)))  # fmt: skip
        assert leaving not in collector._trackers
        assert sum(collector._retired.values()) > 0  # its counts, kept
        assert expired_sessions() >= counted
    finally:
        conn.close()
        collector.stop()


@pytest.mark.parametrize(
    ("reply", "state", "skipped"),
    [
        (bulk("cluster_state:ok\r\ncluster_slots_ok:abc\r\nno colon\r\n" + "x:y\r\n" * 10_000),
         1.0, 1),
        (bulk("cluster_state:fail\r\n"), 0.0, 0),
        (error("ERR This instance has cluster support disabled"), None, 0),
    ],
    ids=["garbage-and-huge", "fail", "refused"],
)  # fmt: skip
def test_cluster_info_of_a_hostile_node_costs_fields_not_the_scrape(
    reply: bytes, state: float | None, skipped: int
) -> None:
    """CLUSTER INFO is read when INFO says cluster_enabled:1: a value that is not a
    number is skipped and counted, and a refused CLUSTER INFO (an ACL, a provider's
    renamed command) leaves the cluster families out, not the INFO ones."""
    info = info_reply({**BASIC_INFO, "Cluster": ["cluster_enabled:1"]})
    rest = basic_handler(info)

    def handle(args: list[bytes]) -> bytes | None:
        return reply if args[:1] == [b"CLUSTER"] else rest(args)

    with FakeRedis(handle) as fake:
        collector = RedisInfoCollector(fake.url, instance=fake.address, timeout=1.0)
        families = {f.name: f for f in collector.collect()}
        collector.close()
    inst = {"instance": fake.address}
    assert families["redis_up"].samples[0].value == 1.0
    assert "redis_keyspace_hits" in families
    if state is None:
        assert "redis_cluster_state" not in families
        return
    cluster_state = families["redis_cluster_state"].samples[0]
    assert (cluster_state.labels, cluster_state.value) == (inst, state)
    assert "redis_cluster_slots_ok" not in families
    assert families["cache_exporter_info_fields_skipped"].samples[0].value == skipped
