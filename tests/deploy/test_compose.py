"""docker-compose stack: valid for docker-compose, Redis configured as the ADR says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from tests.deploy.conftest import DEPLOY, ROOT
from tests.support.processes import cleanup_env, free_port, require_binary, wait_for_port


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


def test_every_service_of_the_image_has_a_healthcheck_for_its_own_port() -> None:
    """The image's HEALTHCHECK probes the exporter's port; a service running something else
    from the same image (the workload) must bring its own, or Docker calls it unhealthy."""
    from exporter.config import DEFAULT_PORT

    services = compose_config()["services"]
    assert isinstance(services, dict)
    for name, service in services.items():
        if service.get("image") != "cache-slo-exporter:local":
            continue
        ports = {  # docker-compose config writes the long syntax
            int(p["target"]) if isinstance(p, dict) else int(str(p).split(":")[-1])
            for p in service.get("ports", [])
        }
        if ports == {DEFAULT_PORT}:
            continue  # the Dockerfile's HEALTHCHECK fits
        probe = " ".join(service.get("healthcheck", {}).get("test", []))
        assert any(f"127.0.0.1:{port}/healthz" in probe for port in ports), (name, probe)


def test_the_workload_healthcheck_passes_against_a_running_workload(tmp_path: Path) -> None:
    """Run the compose file's workload health probe for real, against the workload process."""
    services = compose_config()["services"]
    assert isinstance(services, dict)
    kind, *probe = services["workload"]["healthcheck"]["test"]
    assert kind == "CMD" and probe[0] == "python"
    redis_port, metrics_port = free_port(), free_port()
    redis_server = subprocess.Popen(
        [
            *(require_binary("redis-server"), "--port", str(redis_port), "--bind", "127.0.0.1"),
            *("--save", "", "--dir", str(tmp_path)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    workload = subprocess.Popen(
        [
            *(sys.executable, "-m", "exporter.demo.workload", "--rate=20", "--no-warm"),
            *(f"--redis-url=redis://127.0.0.1:{redis_port}/0", f"--metrics-port={metrics_port}"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=cleanup_env(),
    )
    try:
        wait_for_port(metrics_port, proc=workload, timeout=20)
        command = [
            sys.executable,
            *(arg.replace(":8000/", f":{metrics_port}/") for arg in probe[1:]),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
        assert done.returncode == 0, done.stderr
    finally:
        for proc in (workload, redis_server):
            proc.terminate()
            proc.wait(10)
