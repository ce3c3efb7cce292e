"""Real replication set-ups for tests: a master with a replica, a Sentinel over them,
a single-node cluster with every slot assigned."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import redis


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
