"""Real replication set-ups for tests: a master with a replica, a Sentinel over them,
a single-node cluster with every slot assigned."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from tests.support.processes import RedisServer, SentinelServer


def wait_until(check: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something true; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = check()
        except redis.RedisError:
            found = None
        if found:
            return found
        time.sleep(0.05)
    raise TimeoutError(f"{what} not reached within {timeout}s")


def replication(port: int) -> dict[str, Any]:
    client = redis.Redis(port=port)
    try:
        return dict(client.info("replication"))
    finally:
        client.close()


def wait_linked(replica_port: int) -> None:
    """Until the replica's link to its master is up (initial sync done)."""
    wait_until(
        lambda: replication(replica_port).get("master_link_status") == "up",
        what=f"replica {replica_port} linked",
    )


def make_single_node_cluster(port: int) -> None:
    """Assign every slot to the one node and wait for ``cluster_state:ok``."""
    client = redis.Redis(port=port)
    try:
        client.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        wait_until(
            lambda: b"cluster_state:ok" in client.execute_command("CLUSTER", "INFO"),
            what=f"cluster state ok on {port}",
        )
    finally:
        client.close()


class SentinelGroup:
    """A master, one replica and one Sentinel (quorum 1) watching them, in ``base``;
    :meth:`failover` forces a failover and waits until the replica is master."""

    def __init__(self, base: Path, name: str = "mymaster") -> None:
        self.name = name
        self.master = RedisServer(base / "master").start()
        self.replica = RedisServer(
            base / "replica", extra=["--replicaof", "127.0.0.1", str(self.master.port)]
        ).start()
        self.sentinel = SentinelServer(base / "sentinel", self.master.port, name=name).start()
        wait_linked(self.replica.port)
        wait_until(lambda: self.known_replicas() >= 1, what="Sentinel knows the replica")

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.sentinel.port}/{self.name}"

    def _sentinel(self) -> redis.Redis:
        return redis.Redis(port=self.sentinel.port, decode_responses=True)

    def known_replicas(self) -> int:
        client = self._sentinel()
        try:
            return len(client.execute_command("SENTINEL", "REPLICAS", self.name))
        finally:
            client.close()

    def master_port(self) -> int:
        client = self._sentinel()
        try:
            _, port = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.name)
            return int(port)
        finally:
            client.close()

    def replica_ready(self) -> bool:
        client = self._sentinel()
        try:
            for record in client.execute_command("SENTINEL", "REPLICAS", self.name):
                fields = dict(zip(record[::2], record[1::2], strict=True))
                if fields.get("flags") == "slave" and fields.get("master-link-status") == "ok":
                    return True
            return False
        finally:
            client.close()

    def switched_to(self, port: int) -> bool:
        client = self._sentinel()
        try:
            state = client.execute_command("SENTINEL", "MASTER", self.name)
            fields = dict(zip(state[::2], state[1::2], strict=True))
            return fields.get("port") == str(port) and "failover_in_progress" not in fields.get(
                "flags", ""
            )
        finally:
            client.close()

    def failover(self, *, old_follows: bool = False) -> int:
        """Force a failover; the new master's port once Sentinel names it and it says
        it is master (and, with ``old_follows``, once the old one replicates from it:
        Sentinel tells it at its next INFO round, about 10 s later)."""
        before = self.master_port()
        # Sentinel promotes only a replica its last INFO saw linked (it refreshes every
        # 10 s): right after an earlier failover the demoted master may not be one yet
        wait_until(self.replica_ready, timeout=30, what="a replica Sentinel would promote")
        client = self._sentinel()
        try:
            client.execute_command("SENTINEL", "FAILOVER", self.name)
        finally:
            client.close()
        after: int = wait_until(
            lambda: (port := self.master_port()) != before and port, what="failover"
        )
        wait_until(lambda: replication(after).get("role") == "master", what="new master")
        # GET-MASTER-ADDR-BY-NAME names the promoted replica as soon as the failover
        # starts; SENTINEL MASTER(S), which redis-py reads, once it is over
        wait_until(lambda: self.switched_to(after), what="Sentinel switched master")
        if old_follows:
            wait_until(
                lambda: replication(before).get("master_port") == after,
                timeout=30,
                what="old master follows",
            )
        return after

    def stop(self) -> None:
        for process in (self.sentinel, self.replica, self.master):
            process.stop()
