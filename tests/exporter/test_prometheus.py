"""A real Prometheus scrapes the exporter: /metrics and the /scrape multi-target job.

``honor_labels: true`` is what keeps the exporter's ``instance`` (the Redis
host:port) on the series; without it Prometheus renames it ``exported_instance``.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from exporter.config import instance_of
from tests.exporter.conftest import Exporter
from tests.support.processes import (
    RedisServer,
    cleanup_env,
    free_port,
    require_binary,
    wait_for_port,
)


@pytest.fixture
def prometheus_factory(tmp_path: Path) -> Iterator[Callable[[dict[str, Any]], str]]:
    """Start a real Prometheus with the given config; returns its base URL."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(config: dict[str, Any]) -> str:
        port = free_port()
        config_path = tmp_path / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        with (tmp_path / "prometheus.log").open("wb") as log:
            proc = subprocess.Popen(
                [
                    require_binary("prometheus"),
                    f"--config.file={config_path}",
                    f"--storage.tsdb.path={tmp_path / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=cleanup_env(),
            )
        procs.append(proc)
        wait_for_port(port, timeout=30, proc=proc)
        base = f"http://127.0.0.1:{port}"
        _wait_ready(base)
        return base

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _wait_ready(base: str, timeout: float = 30.0) -> None:
    """Prometheus answers 503 until its TSDB is open: wait for ``/-/ready``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{base}/-/ready", timeout=5) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"Prometheus at {base} not ready within {timeout}s")
        time.sleep(0.1)


def _query(base: str, expr: str) -> list[dict[str, Any]]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as response:
        return list(json.load(response)["data"]["result"])


def test_prometheus_ingests_metrics_and_scrape_targets_with_redis_instances(
    redis_factory: Callable[..., RedisServer],
    exporter_factory: Callable[..., Exporter],
    prometheus_factory: Callable[[dict[str, Any]], str],
) -> None:
    main, other = redis_factory(), redis_factory()
    r = redis.Redis.from_url(other.url)
    r.mset({"user:1": "a", "user:2": "b", "user:3": "c"})
    r.close()
    exporter = exporter_factory(
        "--redis-url", main.url, "--scrape-timeout", "0.8", "--scrape-allow", "127.0.0.1"
    )
    address = f"127.0.0.1:{exporter.port}"
    base = prometheus_factory(
        {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [
                {
                    "job_name": "cache-slo-exporter",
                    "honor_labels": True,
                    "static_configs": [{"targets": [address]}],
                },
                {
                    "job_name": "redis-fleet",
                    "honor_labels": True,
                    "metrics_path": "/scrape",
                    "static_configs": [{"targets": [other.url]}],
                    "relabel_configs": [
                        {"source_labels": ["__address__"], "target_label": "__param_target"},
                        {"target_label": "__address__", "replacement": address},
                    ],
                },
            ],
        }
    )
    expr = 'redis_up == 1 or redis_db_keys{job="redis-fleet"}'
    deadline = time.monotonic() + 30
    while True:
        found = {
            (s["metric"]["__name__"], s["metric"]["job"], s["metric"]["instance"]): s["value"][1]
            for s in _query(base, expr)
        }
        if len(found) >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert found == {
        ("redis_up", "cache-slo-exporter", instance_of(main.url)): "1",
        ("redis_up", "redis-fleet", instance_of(other.url)): "1",
        ("redis_db_keys", "redis-fleet", instance_of(other.url)): "3",
    }
