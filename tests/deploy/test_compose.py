"""docker-compose stack: valid for docker-compose, Redis configured as the ADR says."""

from __future__ import annotations

import subprocess

import yaml

from tests.deploy.conftest import DEPLOY, ROOT
from tests.support.processes import require_binary


def compose_config() -> dict[str, object]:
    out = subprocess.run(
        [require_binary("docker-compose"), "-f", str(DEPLOY / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    config = yaml.safe_load(out.stdout)
    assert isinstance(config, dict)
    return config


def test_compose_file_is_valid_and_has_the_whole_stack() -> None:
    services = compose_config()["services"]
    assert isinstance(services, dict)
    assert set(services) == {
        "redis",
        "exporter",
        "workload",
        "prometheus",
        "alertmanager",
        "grafana",
    }


def test_compose_mounts_generated_rules_dashboards_and_provisioning() -> None:
    services = compose_config()["services"]
    assert isinstance(services, dict)

    def mounts(name: str) -> dict[str, str]:
        result = {}
        for volume in services[name]["volumes"]:
            source, target = str(volume).split(":")[:2]
            result[target] = source
        return result

    assert mounts("prometheus")["/etc/prometheus/rules"] == str(ROOT / "alerts")
    assert mounts("grafana")["/var/lib/grafana/dashboards"] == str(ROOT / "dashboards")
    assert mounts("grafana")["/etc/grafana/provisioning"] == str(DEPLOY / "grafana/provisioning")
    assert mounts("alertmanager")["/etc/alertmanager/alertmanager.yml"] == str(
        DEPLOY / "alertmanager/alertmanager.yml"
    )


def test_redis_is_configured_as_the_adr_says() -> None:
    settings = {}
    for line in (DEPLOY / "redis/redis.conf").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition(" ")
            settings[name] = value.strip().strip('"')
    assert settings["maxmemory-policy"] == "allkeys-lru"
    assert settings["maxmemory"].endswith("mb") and int(settings["maxmemory"][:-2]) > 0
    # expired (x) and evicted (e) events on the keyevent channels (E)
    assert set(settings["notify-keyspace-events"]) >= {"E", "x", "e"}


def test_grafana_provisioning_points_at_prometheus_and_the_dashboards() -> None:
    ds = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    (source,) = ds["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    prov = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/cache-slo.yml").read_text())
    assert prov["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
