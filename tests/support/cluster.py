"""A real local Redis Cluster (3 masters, 3 replicas) for client and exporter tests.

Six ``redis-server --cluster-enabled yes`` on free loopback ports in a temp
directory, joined by ``redis-cli --cluster create --cluster-replicas 1``.  A
test may kill a master (its replica is promoted within about two node
timeouts) and must :meth:`LocalCluster.heal` afterwards: the killed node comes
back on its port and rejoins as a replica, so the next test finds a whole
cluster (with masters possibly on other ports).
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import redis

from tests.support.processes import RedisServer, free_port, require_binary

#: small, so a killed master's replica is promoted within a few seconds
NODE_TIMEOUT_MS = 1500


def cluster_port() -> int:
    """A free port whose cluster-bus port (port + 10000) is free too."""
    for _ in range(100):
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


def cluster_node(workdir: Path, node_timeout_ms: int = NODE_TIMEOUT_MS) -> RedisServer:
    extra = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
             "--cluster-node-timeout", str(node_timeout_ms)]  # fmt: skip
    return RedisServer(workdir, extra=extra, port=cluster_port())


class LocalCluster:
    """Masters and replicas as ``redis-cli --cluster create`` paired them."""

    def __init__(self, base: Path, masters: int = 3, replicas: int = 1) -> None:
        self.nodes = [cluster_node(base / f"node{n}") for n in range(masters * (1 + replicas))]
        self.replicas = replicas

    @property
    def url(self) -> str:
        """A URL of the first node that runs (any node finds the rest)."""
        return next(node.url for node in self.nodes if node.running)

    def start(self) -> LocalCluster:
        cli = require_binary("redis-cli")
        for node in self.nodes:
            node.start()
        addrs = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run(
            [cli, "--cluster", "create", *addrs, "--cluster-replicas", str(self.replicas),
             "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        self.wait_ok()
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def client(self, node: RedisServer) -> redis.Redis:
        return redis.Redis(port=node.port, socket_timeout=2)

    def role(self, node: RedisServer) -> str:
        with self.client(node) as conn:
            return str(conn.info("replication")["role"])

    def masters(self) -> list[RedisServer]:
        return [n for n in self.nodes if n.running and self.role(n) == "master"]

    def replica_of(self, master: RedisServer) -> RedisServer:
        for node in self.nodes:
            if node.running and node is not master:
                with self.client(node) as conn:
                    found = conn.info("replication")
                if found.get("role") == "slave" and int(found["master_port"]) == master.port:
                    return node
        raise LookupError(f"no replica of 127.0.0.1:{master.port}")

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every running node says ``cluster_state:ok`` and knows every slot is ok,
        and every replica's link to its master is up."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if all(self._settled(node) for node in self.nodes if node.running):
                    return
            except redis.RedisError:
                pass
            assert time.monotonic() < deadline, "the cluster did not settle"
            time.sleep(0.1)

    def _settled(self, node: RedisServer) -> bool:
        with self.client(node) as conn:
            info = conn.cluster("info")
            replication = conn.info("replication")
        if info["cluster_state"] != "ok" or int(info["cluster_slots_ok"]) != 16384:
            return False
        if int(info["cluster_slots_pfail"]) or int(info["cluster_slots_fail"]):
            return False
        return bool(
            replication["role"] == "master" or replication.get("master_link_status") == "up"
        )

    def wait_replicated(
        self, master: RedisServer, replica: RedisServer, timeout: float = 30.0
    ) -> None:
        """Until ``replica`` has applied every write ``master`` had taken when called
        (their replication offsets).  ``WAIT`` on a connection of its own proves nothing:
        it waits for that connection's writes only, and with none it returns at once,
        however far behind the replica is (a killed master then loses the last writes)."""
        with self.client(master) as conn:
            target = int(conn.info("replication")["master_repl_offset"])
        deadline = time.monotonic() + timeout
        while True:
            with self.client(replica) as conn:
                applied = int(conn.info("replication").get("slave_repl_offset", -1))
            if applied >= target:
                return
            assert time.monotonic() < deadline, (
                f"127.0.0.1:{replica.port} stayed at offset {applied}, the master at {target}"
            )
            time.sleep(0.05)

    def wait_promoted(self, replica: RedisServer, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.role(replica) != "master":
            assert time.monotonic() < deadline, f"127.0.0.1:{replica.port} was not promoted"
            time.sleep(0.1)

    def node_id(self, node: RedisServer) -> str:
        with self.client(node) as conn:
            return str(conn.execute_command("CLUSTER MYID").decode())

    def reshard(self, source: RedisServer, target: RedisServer, slots: int) -> None:
        """Move ``slots`` slots, keys included, from master ``source`` to ``target``
        (``redis-cli --cluster reshard``: MIGRATE and CLUSTER SETSLOT, as an operator does)."""
        subprocess.run(
            [require_binary("redis-cli"), "--cluster", "reshard", f"127.0.0.1:{source.port}",
             "--cluster-from", self.node_id(source), "--cluster-to", self.node_id(target),
             "--cluster-slots", str(slots), "--cluster-yes"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        self.wait_ok()

    def heal(self) -> None:
        """Restart every killed node (it rejoins as a replica) and wait until settled."""
        for node in self.nodes:
            if not node.running:
                node.start()
        self.wait_ok()


def local_cluster(base: Path) -> Iterator[LocalCluster]:
    cluster = LocalCluster(base).start()
    try:
        yield cluster
    finally:
        cluster.stop()
