"""The generated rules in a real Prometheus, and the test helpers the live
end-to-end test builds on (PrometheusServer, AlertmanagerServer)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, start_http_server

from exporter.client.families import client_metrics
from exporter.metrics import LAYER_REDIS
from exporter.rules import conventions as c
from tests.generate.test_dashboards import SUBSTITUTIONS, queries
from tests.support.processes import free_port
from tests.support.prometheus import AlertmanagerServer, PrometheusServer, wait_until

GLOBAL_1S = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}}


def rule_files(root: Path) -> list[Path]:
    return sorted((root / "alerts").glob("*.rules.yml"))


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["production", "fast"])
def test_prometheus_loads_every_generated_group_and_evaluates_it(
    profile: str, production_dir: Path, fast_dir: Path, tmp_path: Path
) -> None:
    root = production_dir if profile == "production" else fast_dir
    with PrometheusServer(tmp_path / "prom", GLOBAL_1S, rule_files(root)) as prom:
        groups = {g["name"]: g for g in prom.rule_groups()}
        assert set(groups) == {
            c.GROUP_SLI,
            c.GROUP_SLI_LONG,
            c.GROUP_BUDGET,
            c.GROUP_ADR,
            c.GROUP_BURN,
            c.GROUP_OPERATIONAL,
            c.GROUP_TOPOLOGY,
        }
        # with no exporter to scrape, CacheMetricsAbsent goes pending: the rules run
        pending = wait_until(
            lambda: [
                a for a in prom.alerts() if a["labels"]["alertname"] == c.ALERT_METRICS_ABSENT
            ],
            timeout=20,
            what="CacheMetricsAbsent pending in a Prometheus with no targets",
        )
        assert {a["labels"]["component"] for a in pending} == {"exporter", "app"}
        for group in groups.values():
            for rule in group["rules"]:
                assert rule["health"] in ("ok", "unknown"), (rule["name"], rule.get("lastError"))


@pytest.mark.slow
def test_a_firing_rule_reaches_alertmanager(tmp_path: Path) -> None:
    rules = tmp_path / "always.rules.yml"
    rules.write_text(
        "groups:\n  - name: always\n    rules:\n"
        "      - alert: AlwaysFiring\n        expr: vector(1)\n"
        "        labels: {severity: ticket}\n"
    )
    with (
        AlertmanagerServer(tmp_path / "am") as am,
        PrometheusServer(tmp_path / "prom", GLOBAL_1S, [rules], alertmanager_url=am.url) as prom,
    ):
        assert prom.query("vector(1)")[0]["value"][1] == "1"
        received = wait_until(
            lambda: [a for a in am.alerts() if a["labels"]["alertname"] == "AlwaysFiring"],
            timeout=30,
            what="AlwaysFiring in Alertmanager",
        )
        assert received[0]["labels"]["severity"] == "ticket"


@pytest.mark.slow
def test_fast_profile_pages_within_seconds_on_a_real_scrape(fast_dir: Path, tmp_path: Path) -> None:
    """A scraped app whose session reads all miss: the fast profile's page tier fires."""
    registry = CollectorRegistry()
    metrics = client_metrics(registry)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    hits = metrics.hits.labels(layer=LAYER_REDIS, type="session")
    misses = metrics.misses.labels(layer=LAYER_REDIS, type="session")
    stop = threading.Event()

    def traffic() -> None:
        while not stop.wait(0.05):
            misses.inc(5)
            hits.inc(0)

    worker = threading.Thread(target=traffic, daemon=True)
    worker.start()
    config = {
        **GLOBAL_1S,
        "scrape_configs": [
            {"job_name": "cache-app", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
        ],
    }
    try:
        with PrometheusServer(tmp_path / "prom", config, rule_files(fast_dir)) as prom:
            firing = wait_until(
                lambda: [
                    a
                    for a in prom.alerts()
                    if a["labels"]["alertname"] == c.ALERT_HIT_RATE_BURN
                    and a["labels"]["type"] == "session"
                    and a["labels"]["severity"] == c.SEVERITY_PAGE
                    and a["state"] == "firing"
                ],
                timeout=90,
                what="fast-profile CacheHitRateBudgetBurn page for session",
            )
            assert firing[0]["labels"]["long_window"] == "1h"  # nominal name kept
            # every dashboard query runs in the real Prometheus (not only parses)
            for dashboard in (fast_dir / "dashboards").glob("*.json"):
                for _where, expr in queries(json.loads(dashboard.read_text())):
                    for var, value in SUBSTITUTIONS.items():
                        expr = expr.replace(var, value)
                    prom.query(expr)  # raises naming the error if Prometheus refuses it
            ratio = prom.query(
                hit_ratio_query(fast_dir / "dashboards" / "cache-slo-overview.json", "session")
            )
            assert float(ratio[0]["value"][1]) == 0.0  # every session read missed
    finally:
        stop.set()
        worker.join(5)
        server.shutdown()
        server.server_close()
        thread.join(5)


def hit_ratio_query(dashboard: Path, type_: str) -> str:
    """The overview's hit-rate panel query for one type, variables substituted."""
    data = json.loads(dashboard.read_text())
    panel = next(p for p in data["panels"] if p["title"].startswith(f"Hit rate: {type_} reads"))
    expr = str(panel["targets"][0]["expr"])
    for var, value in SUBSTITUTIONS.items():
        expr = expr.replace(var, value)
    return expr


@pytest.mark.slow
def test_raw_dashboard_panels_read_only_the_series_the_slo_files_selectors_name(
    tmp_path: Path,
) -> None:
    """Two applications under one job, told apart by ``namespace``: the dashboards of
    the service whose ``app_selector`` names ``namespace: shop`` read shop's series only
    (its session reads all hit, the other's all miss), and every query of every
    dashboard runs in the real Prometheus."""
    from exporter.dashboards import render_dashboards
    from exporter.slo import load_slo
    from tests.generate.test_dashboards import SELECTOR_SLO

    (tmp_path / "slo.yaml").write_text(
        SELECTOR_SLO.replace("job: checkout-api", "job: cache-app")
    )
    dashboards = render_dashboards(load_slo(tmp_path / "slo.yaml"), "slo.yaml")
    servers = []
    targets = []
    growing = []
    for namespace, hit in (("shop", True), ("other", False)):
        registry = CollectorRegistry()
        metrics = client_metrics(registry)
        hits = metrics.hits.labels(layer=LAYER_REDIS, type="session")
        misses = metrics.misses.labels(layer=LAYER_REDIS, type="session")  # both shown
        growing.append(hits if hit else misses)
        port = free_port()
        servers.append(start_http_server(port, addr="127.0.0.1", registry=registry))
        targets.append({"targets": [f"127.0.0.1:{port}"], "labels": {"namespace": namespace}})
    stop = threading.Event()

    def traffic() -> None:  # the counters must grow for rate() to see reads
        while not stop.wait(0.05):
            for counter in growing:
                counter.inc(5)

    worker = threading.Thread(target=traffic, daemon=True)
    worker.start()
    config = {**GLOBAL_1S, "scrape_configs": [{"job_name": "cache-app", "static_configs": targets}]}
    try:
        with PrometheusServer(tmp_path / "prom", config, []) as prom:
            overview = json.loads(dashboards["cache-slo-overview.json"])
            panel = next(p for p in overview["panels"] if p["title"] == "Hit rate by type")
            expr = panel["targets"][0]["expr"]
            for var, value in SUBSTITUTIONS.items():
                expr = expr.replace(var, value)
            assert 'namespace="shop"' in expr
            series = wait_until(
                lambda: [s for s in prom.query(expr) if s["metric"].get("type") == "session"],
                timeout=30,
                what="the session hit rate of the shop namespace",
            )
            assert float(series[0]["value"][1]) == 1.0  # shop's reads only: all hits
            unscoped = expr.replace('namespace="shop"', 'namespace=~".+"')

            def mixed() -> list[dict[str, object]]:  # the other target: maybe 1 scrape so far
                return [
                    s for s in prom.query(unscoped)
                    if s["metric"].get("type") == "session" and 0.0 < float(s["value"][1]) < 1.0
                ]  # fmt: skip

            # both namespaces: some missed (waited for, not read once)
            wait_until(mixed, timeout=30, what="the session hit rate of both namespaces")
            for text in dashboards.values():
                for _where, query in queries(json.loads(text)):
                    for var, value in SUBSTITUTIONS.items():
                        query = query.replace(var, value)
                    prom.query(query)  # raises naming the error if Prometheus refuses it
    finally:
        stop.set()
        worker.join(5)
        for server, thread in servers:
            server.shutdown()
            server.server_close()
            thread.join(5)
