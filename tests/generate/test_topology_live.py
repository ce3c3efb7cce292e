"""The topology alerts on a real replica pair: the exporter (``serve``) reads the real
replica, a real Prometheus evaluates the fast profile's rules, and stopping the
master takes RedisReplicaLinkDown to pending, then firing, within seconds."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exporter.cli import main
from exporter.config import instance_of
from exporter.rules import conventions as c
from tests.generate.conftest import REPO
from tests.generate.test_dashboards import SUBSTITUTIONS
from tests.support.processes import RedisServer, cleanup_env, free_port, wait_for_port
from tests.support.prometheus import PrometheusServer, wait_until
from tests.support.topology import wait_linked

GLOBAL_1S = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}}


@pytest.fixture
def replica_pair(tmp_path: Path) -> Iterator[tuple[RedisServer, RedisServer]]:
    """A real master and a real replica of it, linked."""
    master = RedisServer(tmp_path / "master").start()
    replica = RedisServer(
        tmp_path / "replica", extra=["--replicaof", "127.0.0.1", str(master.port)]
    ).start()
    try:
        wait_linked(replica.port)
        yield master, replica
    finally:
        replica.stop()
        master.stop()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``cache-slo-exporter serve`` processes started by the test, stopped after."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def panel_query(dashboard: Path, title: str) -> str:
    """A dashboard panel's first query, its variables substituted."""
    panels = json.loads(dashboard.read_text())["panels"]
    expr = str(next(p for p in panels if p["title"] == title)["targets"][0]["expr"])
    for var, value in SUBSTITUTIONS.items():
        expr = expr.replace(var, value)
    return expr


def link_alerts(prom: PrometheusServer) -> list[dict[str, Any]]:
    return [a for a in prom.alerts() if a["labels"]["alertname"] == c.ALERT_REPLICA_LINK_DOWN]


@pytest.mark.slow
def test_replica_link_alert_fires_when_the_replicas_master_stops(
    replica_pair: tuple[RedisServer, RedisServer],
    serve: list[subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    master, replica = replica_pair
    out = tmp_path / "fast"
    assert main(["generate", "--profile", "fast", "--out", str(out)]) == 0
    port = free_port()
    with (tmp_path / "exporter.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "exporter.cli", "serve", "--redis-url", replica.url,
             "--listen", f"127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=cleanup_env(),
        )  # fmt: skip
    serve.append(proc)
    wait_for_port(port, timeout=30, proc=proc)
    config = {
        **GLOBAL_1S,
        "scrape_configs": [
            {
                "job_name": "cache-slo-exporter",
                "honor_labels": True,  # keeps the Redis address as instance
                "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
            }
        ],
    }
    rules = sorted((out / "alerts").glob("*.rules.yml"))
    assert out / "alerts" / c.FILE_TOPOLOGY in rules
    with PrometheusServer(tmp_path / "prom", config, rules) as prom:
        linked = wait_until(
            lambda: prom.query("redis_master_link_up == 1"),
            timeout=30,
            what="the replica's link seen up in Prometheus",
        )
        assert linked[0]["metric"]["instance"] == instance_of(replica.url)
        # the dashboard's replication panel draws the real link
        panel = panel_query(
            out / "dashboards" / "cache-redis-server.json",
            "Replication: replica link to its master (1 = up)",
        )
        assert [r["value"][1] for r in prom.query(panel)] == ["1"]
        time.sleep(2)  # a few evaluations on a healthy pair
        assert link_alerts(prom) == []  # silent while linked

        master.stop()
        stopped = time.monotonic()
        pending = wait_until(
            lambda: [a for a in link_alerts(prom) if a["state"] == "pending"],
            timeout=30,
            what="RedisReplicaLinkDown pending",
        )
        pending_after = time.monotonic() - stopped
        firing = wait_until(
            lambda: [a for a in link_alerts(prom) if a["state"] == "firing"],
            timeout=30,
            what="RedisReplicaLinkDown firing",
        )
        firing_after = time.monotonic() - stopped
        labels = firing[0]["labels"]
        assert labels["instance"] == instance_of(replica.url)
        assert labels["master_port"] == str(master.port)
        assert labels["severity"] == c.SEVERITY_TICKET
        assert labels["service"]
        assert pending[0]["labels"]["instance"] == labels["instance"]
        assert [r["value"][1] for r in prom.query(panel)] == ["0"]
        # fast profile: for 2m -> 5s; scrape and evaluation every second
        assert firing_after < 20, f"firing {firing_after:.1f}s after the master stopped"
        print(f"pending after {pending_after:.1f}s, firing after {firing_after:.1f}s")
