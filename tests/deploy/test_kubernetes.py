"""Kubernetes manifests: schema-valid, CRDs structurally sound, rules in sync."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.conftest import K8S, ROOT, venv_tool
from tests.support.processes import require_binary

#: core kinds kubernetes-validate has schemas for (it ships them; no network)
CORE_MANIFESTS = (
    "deployment.yaml",
    "service.yaml",
    "secret.example.yaml",
    "grafana-dashboards.yaml",
)


def load(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((K8S / name).read_text())
    assert isinstance(doc, dict)
    return doc


def test_core_manifests_pass_strict_schema_validation() -> None:
    out = subprocess.run(
        [venv_tool("kubernetes-validate"), "--strict", *(str(K8S / n) for n in CORE_MANIFESTS)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("passed for resource") == len(CORE_MANIFESTS), out.stdout


def test_kustomization_lists_every_manifest_but_the_example_secret() -> None:
    listed = set(load("kustomization.yaml")["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert listed == on_disk


def test_redis_url_comes_from_the_secret() -> None:
    (container,) = load("deployment.yaml")["spec"]["template"]["spec"]["containers"]
    secret = load("secret.example.yaml")
    refs = [e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e]
    assert {"name": secret["metadata"]["name"], "key": "redis-url"} in refs
    assert not any("redis://" in str(e.get("value", "")) for e in container["env"])


def test_service_monitor_selects_the_service_and_its_port() -> None:
    monitor, service = load("servicemonitor.yaml"), load("service.yaml")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["kind"] == "ServiceMonitor"
    labels = service["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    port_names = {p["name"] for p in service["spec"]["ports"]}
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= port_names
    assert all(e["path"] == "/metrics" for e in monitor["spec"]["endpoints"])
    # the exporter's instance label is the Redis address; without this it is renamed
    assert all(e.get("honorLabels") is True for e in monitor["spec"]["endpoints"])


def test_prometheus_rule_is_valid_for_promtool(tmp_path: Path) -> None:
    rule = load("prometheusrule.yaml")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["kind"] == "PrometheusRule"
    assert set(rule["spec"]) == {"groups"}
    rules_file = tmp_path / "spec.rules.yml"
    rules_file.write_text(yaml.safe_dump(rule["spec"]))
    out = subprocess.run(
        [require_binary("promtool"), "check", "rules", str(rules_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_prometheus_rule_and_dashboards_configmap_are_in_sync_with_the_generated_files(
    rule_files: list[Path],
) -> None:
    rule = load("prometheusrule.yaml")
    generated = [
        group for path in rule_files for group in yaml.safe_load(path.read_text())["groups"]
    ]
    assert rule["spec"]["groups"] == generated
    config_map = load("grafana-dashboards.yaml")
    dashboards = sorted((ROOT / "dashboards").glob("*.json"))
    assert sorted(config_map["data"]) == [p.name for p in dashboards]
    for path in dashboards:
        assert json.loads(config_map["data"][path.name]) == json.loads(path.read_text())
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"


def test_the_pod_is_hardened_probed_and_sized() -> None:
    """Restricted pod security, no API token it never uses, probes on /healthz (never
    /readyz: a Redis outage must stay scrapeable as redis_up 0), requests and a memory cap."""
    pod = load("deployment.yaml")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False  # the exporter never calls the API
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"]["drop"] == ["ALL"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}, probe
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]
