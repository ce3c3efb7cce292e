"""prometheus.yml and alertmanager.yml: checked by promtool/amtool and started for real."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import DEPLOY
from tests.support.processes import cleanup_env, free_port, require_binary, wait_for_port

PROMETHEUS_YML = DEPLOY / "prometheus/prometheus.yml"
ALERTMANAGER_YML = DEPLOY / "alertmanager/alertmanager.yml"


def loopback_prometheus_config(tmp: Path, rule_files: list[Path], am_port: int) -> Path:
    """The deploy config with compose hostnames rewritten to loopback, rules copied in."""
    config = yaml.safe_load(PROMETHEUS_YML.read_text())
    rules_dir = tmp / "rules"
    rules_dir.mkdir()
    for path in rule_files:
        shutil.copy(path, rules_dir / path.name)
    (pattern,) = config["rule_files"]
    config["rule_files"] = [str(rules_dir / Path(pattern).name)]
    config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [
        f"127.0.0.1:{am_port}"
    ]
    for job in config["scrape_configs"]:
        for static in job["static_configs"]:
            static["targets"] = [f"127.0.0.1:{free_port()}" for _ in static["targets"]]
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def poll(check: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.2)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=False)


def test_promtool_accepts_the_config_with_the_generated_rules(
    tmp_path: Path, rule_files: list[Path]
) -> None:
    config = loopback_prometheus_config(tmp_path, rule_files, free_port())
    out = run(require_binary("promtool"), "check", "config", str(config))
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(rule_files)} rule files found" in out.stdout + out.stderr


def test_exporter_job_keeps_the_redis_instance_label() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["cache-slo-exporter"].get("honor_labels") is True
    assert not jobs["cache-app"].get("honor_labels")


def test_amtool_accepts_the_alertmanager_config() -> None:
    out = run(require_binary("amtool"), "check-config", str(ALERTMANAGER_YML))
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["severity=page", "slo=cache-hit-rate", "type=session"], "pager"),
        (["severity=ticket", "slo=cache-latency"], "ticket"),
        (["alertname=Unlabelled"], "ticket"),
    ],
)
def test_alerts_route_by_severity(labels: list[str], receiver: str) -> None:
    out = run(
        require_binary("amtool"),
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER_YML}",
        *labels,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip() == receiver


def generated_alerts(rule_files: list[Path]) -> list[dict[str, Any]]:
    return [
        rule
        for path in rule_files
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def test_inhibition_compares_labels_the_generated_pages_carry(rule_files: list[Path]) -> None:
    """Tickets are held back while the page for the same objective fires: every label
    an inhibit rule compares, and every alert name it matches, is on a generated alert."""
    alerts = generated_alerts(rule_files)
    pages = [a for a in alerts if a["labels"]["severity"] == "page"]
    names = {a["alert"] for a in alerts}
    rules = yaml.safe_load(ALERTMANAGER_YML.read_text())["inhibit_rules"]
    for rule in rules:
        assert 'severity="page"' in rule["source_matchers"]
        assert 'severity="ticket"' in rule["target_matchers"]
        for label in rule["equal"]:
            assert any(label in a["labels"] for a in pages), label
        for matcher in rule["source_matchers"] + rule["target_matchers"]:
            if matcher.startswith("alertname="):
                assert matcher.split("=", 1)[1].strip('"') in names, matcher


def test_the_demo_routes_and_inhibits_as_the_deploy_config_does() -> None:
    from exporter.demo.stack import GROUP_BY, INHIBIT_RULES

    config = yaml.safe_load(ALERTMANAGER_YML.read_text())
    assert tuple(config["route"]["group_by"]) == GROUP_BY
    assert config["inhibit_rules"] == [dict(rule) for rule in INHIBIT_RULES]
    assert [(r["receiver"], r["matchers"]) for r in config["route"]["routes"]] == [
        ("pager", ['severity="page"']),
        ("ticket", ['severity="ticket"']),
    ]


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[int]:
    port, cluster = free_port(), free_port()
    proc = subprocess.Popen(
        [
            require_binary("prometheus-alertmanager"),
            f"--config.file={ALERTMANAGER_YML}",
            f"--storage.path={tmp_path / 'am'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--cluster.listen-address=127.0.0.1:{cluster}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=cleanup_env(),
    )
    try:
        wait_for_port(port, proc=proc)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def test_prometheus_and_alertmanager_start_with_the_deploy_configs(
    tmp_path: Path, rule_files: list[Path], alertmanager: int
) -> None:
    status = poll(lambda: get_json(f"http://127.0.0.1:{alertmanager}/api/v2/status"))
    loaded = yaml.safe_load(status["config"]["original"])
    assert {r["name"] for r in loaded["receivers"]} == {"pager", "ticket"}

    config = loopback_prometheus_config(tmp_path, rule_files, alertmanager)
    port = free_port()
    proc = subprocess.Popen(
        [
            require_binary("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=cleanup_env(),
    )
    try:
        wait_for_port(port, proc=proc, timeout=20)
        base = f"http://127.0.0.1:{port}/api/v1"
        expected_groups = {
            group["name"]
            for path in rule_files
            for group in yaml.safe_load(path.read_text())["groups"]
        }
        groups = poll(lambda: get_json(f"{base}/rules")["data"]["groups"])
        assert {g["name"] for g in groups} == expected_groups
        assert all(rule["health"] != "err" for g in groups for rule in g["rules"])
        active = poll(lambda: get_json(f"{base}/alertmanagers")["data"]["activeAlertmanagers"])
        assert active[0]["url"].startswith(f"http://127.0.0.1:{alertmanager}/")
    finally:
        proc.terminate()
        proc.wait(10)


def post_alerts(port: int, alerts: list[dict[str, str]]) -> None:
    body = json.dumps([{"labels": labels} for labels in alerts]).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v2/alerts",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200


def test_a_page_holds_back_tickets_of_the_same_objective_only(alertmanager: int) -> None:
    page = {
        "alertname": "CacheHitRateBudgetBurn",
        "severity": "page",
        "slo": "cache-hit-rate",
        "type": "session",
        "long_window": "1h",
    }
    same_burn_ticket = {**page, "severity": "ticket", "long_window": "1d"}
    same_adr_ticket = {"alertname": "LowCacheHitRate", "severity": "ticket", "type": "session"}
    other_type = {"alertname": "LowCacheHitRate", "severity": "ticket", "type": "user"}
    latency = {"alertname": "HighCacheLatency", "severity": "ticket", "operation": "get"}
    post_alerts(alertmanager, [page, same_burn_ticket, same_adr_ticket, other_type, latency])

    def states() -> dict[tuple[str, str, str], list[str]] | None:
        found = get_json(f"http://127.0.0.1:{alertmanager}/api/v2/alerts")
        if len(found) < 5:
            return None
        return {
            (a["labels"]["alertname"], a["labels"]["severity"], a["labels"].get("type", "")): a[
                "status"
            ]["inhibitedBy"]
            for a in found
        }

    inhibited = poll(states)
    assert inhibited[("CacheHitRateBudgetBurn", "page", "session")] == []
    assert inhibited[("CacheHitRateBudgetBurn", "ticket", "session")] != []
    assert inhibited[("LowCacheHitRate", "ticket", "session")] != []
    assert inhibited[("LowCacheHitRate", "ticket", "user")] == []
    assert inhibited[("HighCacheLatency", "ticket", "")] == []


def test_scrape_jobs_are_the_ones_the_generated_rules_select() -> None:
    """The rules select job="cache-slo-exporter" / job="cache-app" (the shipped SLO
    file's service selectors); the deploy config and the demo must scrape under those."""
    from exporter.demo.stack import APP_JOB, EXPORTER_JOB
    from exporter.slo import load_slo

    service = load_slo().service
    exporter_job, app_job = dict(service.exporter)["job"], dict(service.app)["job"]
    jobs = {j["job_name"] for j in yaml.safe_load(PROMETHEUS_YML.read_text())["scrape_configs"]}
    assert {exporter_job, app_job} <= jobs
    assert (exporter_job, app_job) == (EXPORTER_JOB, APP_JOB)


def test_a_page_without_an_objective_holds_back_no_unrelated_ticket(alertmanager: int) -> None:
    """RedisDown pages but names no objective (no slo, type or operation label): it must
    not silence the operational tickets that carry none of those labels either."""
    page = {"alertname": "RedisDown", "severity": "page", "instance": "redis:6379"}
    tickets = [
        {"alertname": "CacheExporterDown", "severity": "ticket", "instance": "exporter:9150"},
        {"alertname": "RedisMemoryNearMax", "severity": "ticket", "instance": "redis:6379"},
        {"alertname": "CacheMetricsAbsent", "severity": "ticket", "component": "app"},
    ]
    post_alerts(alertmanager, [page, *tickets])

    def states() -> dict[str, list[str]] | None:
        found = get_json(f"http://127.0.0.1:{alertmanager}/api/v2/alerts")
        if len(found) < 4:
            return None
        return {a["labels"]["alertname"]: a["status"]["inhibitedBy"] for a in found}

    inhibited = poll(states)
    assert inhibited == {name: [] for name in inhibited}, inhibited
