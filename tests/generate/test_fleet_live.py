"""Two services in one Prometheus (#11): the rules generated from two SLO files keep
each service's numbers, budgets and alerts apart, and keep the placement label."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, start_http_server

from exporter.cli import main
from exporter.client.families import client_metrics
from exporter.metrics import LAYER_REDIS
from exporter.rules import conventions as c
from exporter.slo import parse_duration
from tests.support.processes import free_port
from tests.support.prometheus import PrometheusServer, wait_until

GLOBAL_1S = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}}

SLO = """\
version: 1
window: 30d
service:
  name: {name}
  app_selector: {{job: {job}}}
  group_by: [cluster]
hit_rate: {{objective: 0.8, min_read_rate: 0.1}}
latency: {{threshold: 10ms, objective: 0.99}}
key_types:
  - {{name: session, ttl: 24h, tenant_scoped: false, hit_rate_objective: 0.95}}
"""


@dataclass
class App:
    """A scraped application whose session reads hit ``hit_share`` of the time."""

    port: int
    stop: threading.Event


@pytest.fixture
def apps() -> Iterator[dict[str, App]]:
    """checkout (all hits) and search (one hit in ten): same metric names, same key type."""
    started = []
    found = {}
    for name, hits_per_tick, misses_per_tick in (("checkout", 10, 0), ("search", 1, 9)):
        registry = CollectorRegistry()
        metrics = client_metrics(registry)
        port = free_port()
        server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
        stop = threading.Event()
        hits = metrics.hits.labels(layer=LAYER_REDIS, type="session")
        misses = metrics.misses.labels(layer=LAYER_REDIS, type="session")

        def traffic(h: int = hits_per_tick, m: int = misses_per_tick, s: threading.Event = stop,
                    hc=hits, mc=misses) -> None:  # fmt: skip
            while not s.wait(0.05):
                hc.inc(h)
                mc.inc(m)

        worker = threading.Thread(target=traffic, daemon=True)
        worker.start()
        started.append((server, thread, worker, stop))
        found[name] = App(port, stop)
    yield found
    for server, thread, worker, stop in started:
        stop.set()
        worker.join(5)
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.slow
def test_two_services_in_one_prometheus_keep_their_numbers_and_alerts_apart(
    apps: dict[str, App], tmp_path: Path
) -> None:
    slos = []
    for name in apps:
        path = tmp_path / f"{name}.yaml"
        path.write_text(SLO.format(name=name, job=f"{name}-app"))
        slos += ["--slo", str(path)]
    out = tmp_path / "out"
    assert main(["generate", *slos, "--profile", "fast", "--out", str(out)]) == 0
    rules = sorted((out / "alerts").glob("*.rules.yml"))
    assert {p.name.split("-")[0] for p in rules} == {"checkout", "search"}
    config = {
        **GLOBAL_1S,
        "scrape_configs": [
            {
                "job_name": f"{name}-app",
                "static_configs": [
                    {"targets": [f"127.0.0.1:{app.port}"], "labels": {"cluster": f"{name}-eu"}}
                ],
            }
            for name, app in apps.items()
        ],
    }
    with PrometheusServer(tmp_path / "prom", config, rules) as prom:
        # the search service burns its budget: its page fires, labelled as its own
        firing = wait_until(
            lambda: [
                a
                for a in prom.alerts()
                if a["labels"]["alertname"] == c.ALERT_HIT_RATE_BURN
                and a["labels"]["severity"] == c.SEVERITY_PAGE
                and a["state"] == "firing"
            ],
            timeout=90,
            what="a fast-profile hit-rate page",
        )
        assert {(a["labels"]["service"], a["labels"]["cluster"]) for a in firing} == {
            ("search", "search-eu")
        }
        # every recording carries its service and placement; the two never merge
        ratio = c.record_hit_ratio(parse_duration("5m"))
        by_service = {
            r["metric"]["service"]: (r["metric"]["cluster"], float(r["value"][1]))
            for r in prom.query(f'{ratio}{{type="session"}}')
        }
        assert by_service["checkout"] == ("checkout-eu", 1.0)
        assert by_service["search"][0] == "search-eu"
        assert by_service["search"][1] == pytest.approx(0.1, abs=0.02)
        # the long windows (added up from the 5m recordings) too
        long = prom.query(f'{c.record_hit_ratio(parse_duration("1d"))}{{type="session"}}')
        assert {r["metric"]["service"] for r in long} == {"checkout", "search"}
        budgets = {
            r["metric"]["service"]: float(r["value"][1])
            for r in prom.query(
                f'{c.RECORD_BUDGET_REMAINING}{{slo="{c.SLO_HIT_RATE}", type="session"}}'
            )
        }
        assert budgets["checkout"] == pytest.approx(1.0)
        assert budgets["search"] < 0  # 90 % misses against a 5 % budget: overspent
        # no alert of any kind names the healthy service's hit rate
        assert not [
            a
            for a in prom.alerts()
            if a["labels"].get("service") == "checkout"
            and a["labels"]["alertname"] in (c.ALERT_HIT_RATE_BURN, c.ALERT_LOW_HIT_RATE)
        ]
