"""Which firing alerts the status page pins on an objective, against a real Prometheus
that evaluates always-firing copies of the generated alerts' names and labels."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from exporter.rules import conventions as c
from exporter.slo import load_slo
from exporter.status.aggregate import AT_RISK, NO_DATA, collect
from exporter.status.prometheus import PrometheusAPI
from exporter.status.render import render
from tests.support.processes import free_port, wait_for_port
from tests.support.prometheus import PrometheusServer

#: alert name -> labels, as the generated rules label them (see alerts/*.rules.yml)
FIRING = {
    # operational alerts: about Redis or the exporter, not about an objective
    c.ALERT_REDIS_DOWN: {"severity": "page"},
    c.ALERT_EXPORTER_DOWN: {"severity": "ticket"},
    c.ALERT_MEMORY_NEAR_MAX: {"severity": "ticket"},
    c.ALERT_EVICTION_SURGE: {"severity": "ticket", "type": "session"},
    c.ALERT_CLIENT_ERRORS: {"severity": "ticket", "operation": "get"},
    # an objective's alert: the user hit rate
    c.ALERT_LOW_HIT_RATE: {"severity": "ticket", "type": "user"},
}


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[str]:
    rules = {
        "groups": [
            {
                "name": "always-firing",
                "interval": "1s",
                "rules": [
                    {"alert": name, "expr": "vector(1)", "labels": labels}
                    for name, labels in FIRING.items()
                ],
            }
        ]
    }
    (tmp_path / "firing.rules.yml").write_text(yaml.safe_dump(rules))
    config = {"global": {"evaluation_interval": "1s"}}
    with PrometheusServer(
        tmp_path / "prometheus", config, [tmp_path / "firing.rules.yml"]
    ) as server:
        yield server.url


async def test_only_an_objectives_own_alerts_put_it_at_risk(prometheus: str) -> None:
    slo = load_slo()
    async with httpx.AsyncClient(base_url=prometheus, timeout=10) as client:
        api = PrometheusAPI(client)

        async def all_firing() -> None:
            while len(await api.firing_alerts()) < len(FIRING):
                await asyncio.sleep(0.2)

        await asyncio.wait_for(all_firing(), 20)
        page = await collect(api, slo)
    pinned = {
        r.objective.key: sorted(a["labels"]["alertname"] for a in r.alerts) for r in page.rows
    }
    assert pinned == {
        r.objective.key: ([c.ALERT_LOW_HIT_RATE] if r.objective.key == "hit-rate-user" else [])
        for r in page.rows
    }
    # no SLI data in this Prometheus: nothing is missed over the window, and the one
    # objective with an alert of its own is at risk, the rest have no data
    assert {r.objective.key: r.state for r in page.rows} == {
        r.objective.key: (AT_RISK if r.objective.key == "hit-rate-user" else NO_DATA)
        for r in page.rows
    }
    html = render(page, slo, prometheus)
    firing = html.split('id="firing"', 1)[1]
    assert all(name in firing for name in FIRING)  # every alert is still listed


@pytest.mark.parametrize("body", ["[]", '"up"', '{"status": "success", "data": []}', "<html>"])
def test_a_url_that_is_not_prometheus_gets_a_clear_page_not_a_500(
    tmp_path: Path, body: str
) -> None:
    """--prometheus-url pointing at some other HTTP server (a real one, serving files)."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from exporter.status import build_router

    api = tmp_path / "api/v1"
    api.mkdir(parents=True)
    for name in ("rules", "query", "query_range", "alerts"):
        (api / name).write_text(body)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, proc=server)
        app = FastAPI()
        app.include_router(build_router(f"http://127.0.0.1:{port}", load_slo()))
        response = TestClient(app, raise_server_exceptions=False).get("/")
    finally:
        server.terminate()
        server.wait(10)
    assert response.status_code == 503, response.text
    assert "could not be queried" in response.text


def _luminance(hex_color: str) -> float:
    rgb = [int(hex_color.lstrip("#")[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def _contrast(fg: str, bg: str) -> float:
    hi, lo = sorted((_luminance(fg), _luminance(bg)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_status_text_colours_meet_wcag_aa_contrast() -> None:
    """The OK / BROKEN state and the values are small text: WCAG AA wants 4.5:1 against
    the card they sit on (white when met, the light red when broken)."""
    from exporter.status.render import CSS as _CSS

    def colour(selector: str, prop: str) -> str:
        rule = re.search(r"(?:^|[\s}])" + re.escape(selector) + r"\{([^}]*)\}", _CSS)
        assert rule, selector
        found = re.search(rf"(?:^|;){prop}:#([0-9a-f]{{6}}|[0-9a-f]{{3}})\b", rule.group(1))
        assert found, (selector, prop)
        hexa = found.group(1)
        return "#" + (hexa if len(hexa) == 6 else "".join(c * 2 for c in hexa))

    card = colour(".objective", "background")
    broken_card = colour(".objective.broken", "background")
    pairs = {
        "OK state": (colour(".state", "color"), card),
        "BROKEN state": (colour(".broken .state", "color"), broken_card),
        "broken value": (colour(".broken .value", "color"), broken_card),
        "labels": (colour("dt", "color"), card),
        "error": (colour(".error", "color"), colour(".error", "background")),
        "AT RISK state": (
            colour(".at-risk .state", "color"),
            colour(".objective.at-risk", "background"),
        ),
        "NO DATA state": (colour(".no-data .state", "color"), card),
        "overspent budget": (colour("dd.overspent", "color"), broken_card),
        "held back": (colour(".held", "color"), colour(".objective.at-risk", "background")),
        "note": (colour(".note", "color"), colour(".note", "background")),
        "links": (colour("a", "color"), card),
    }
    low = {k: round(_contrast(*v), 2) for k, v in pairs.items() if _contrast(*v) < 4.5}
    assert low == {}, low


def test_alert_labels_are_escaped_by_the_template() -> None:
    """Label values come from whoever writes rules: the template escapes every one."""
    from exporter.status.aggregate import Page, Row
    from exporter.status.queries import objectives

    slo = load_slo()
    firing = [{"labels": {"alertname": "X<script>", "severity": "page", "type": "a&b"}}]
    page = Page([Row(o) for o in objectives(slo)], None, firing, True)
    html = render(page, slo, "http://prometheus:9090")
    assert "<script>" not in html
    assert (
        '<li class="alert" data-alert="X&lt;script&gt;"><a class="alert-link" href="'
        "http://prometheus:9090/graph?g0.expr=ALERTS%7Balertname%3D%22X%3Cscript%3E%22"
    ) in html
    labels = '<span class="labels"> severity=page, type=a&amp;b</span></li>'
    assert f'">X&lt;script&gt;</a>{labels}' in html


def test_grouping_labels_of_the_slo_file_narrow_the_page(tmp_path: Path) -> None:
    """``?cluster=`` narrows every recorded query and the alerts when the SLO file groups
    by cluster; a label the file does not group by is ignored; a bad value is refused."""
    from exporter.status.queries import Selection, SelectionError, objectives, selection

    (tmp_path / "slo.yaml").write_text(
        "version: 1\nwindow: 30d\nservice: {name: checkout, group_by: [cluster]}\n"
        "hit_rate: {objective: 0.8, min_read_rate: 0.1}\n"
        "latency: {operation: get, threshold: 10ms, objective: 0.99}\n"
        "key_types:\n  - {name: session, ttl: 1h, tenant_scoped: false}\n"
    )
    slo = load_slo(tmp_path / "slo.yaml")
    chosen = selection(slo, {"cluster": "eu-1", "namespace": "ignored"})
    assert chosen == Selection("checkout", (("cluster", "eu-1"),))
    for o in objectives(slo, chosen):
        assert o.recorded("5m").endswith('cluster="eu-1"}'), o.key
        assert 'service="checkout"' in o.recorded("5m")
    assert chosen.matches({"service": "checkout", "cluster": "eu-1"})
    assert not chosen.matches({"service": "checkout", "cluster": "us-2"})
    assert not chosen.matches({"service": "other"})
    with pytest.raises(SelectionError, match="cluster: expected"):
        selection(slo, {"cluster": 'eu"}'})
    # no cluster chosen: each card reads the worst cluster, never whichever answers first
    for o in objectives(slo, selection(slo, {})):
        assert o.recorded("5m").startswith("min(") and 'service="checkout"' in o.recorded("5m")


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, b"{}"),
        (200, b"<html>"),
        (200, b'[{"labels": 5, "status": "x"}, 7, null, {"status": {"state": "suppressed"}}]'),
        (500, b"oops"),
        (200, b"[" + b'{"labels": {"a": "b"}},' * 60_000 + b"{}]"),  # over the 1 MiB cap
    ],
    ids=["object", "not-json", "junk-items", "http-500", "huge"],
)
async def test_an_odd_alertmanager_answer_leaves_delivery_unknown_not_a_broken_page(
    status: int, body: bytes
) -> None:
    from exporter.status.alertmanager import AlertmanagerAPI

    def prometheus(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/alerts":
            alert = {"state": "firing", "labels": {"alertname": "RedisDown"}}
            return httpx.Response(200, json={"status": "success", "data": {"alerts": [alert]}})
        data: object = {"groups": []} if "rules" in request.url.path else {"result": []}
        return httpx.Response(200, json={"status": "success", "data": data})

    def alertmanager(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body)

    slo = load_slo()
    prom = httpx.AsyncClient(transport=httpx.MockTransport(prometheus), base_url="http://p")
    am = httpx.AsyncClient(transport=httpx.MockTransport(alertmanager), base_url="http://a")
    async with prom, am:
        page = await collect(PrometheusAPI(prom), slo, AlertmanagerAPI(am))
    html = render(page, slo, "http://p")
    if body.startswith(b'[{"labels": 5'):  # a list: read, nothing in it held back
        assert 'id="alertmanager-note"' not in html
    else:
        assert "Alertmanager could not be read" in html
    assert "RedisDown" in html.split('id="firing"', 1)[1]  # still listed as firing
    assert 'id="held-back"' not in html


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://runbooks.example/RedisDown.md", True),
        ("http://wiki/x", True),
        ("javascript:alert(1)", False),
        ("data:text/html,<script>", False),
        ("//evil.example/x", False),
        ("https://ok.example/\u202ebad", False),
        ("https://ok.example/a b", False),
        ("https://x/" + "a" * 3000, False),
        ("", False),
    ],
)
def test_only_absolute_http_runbook_links_become_links(url: str, shown: bool) -> None:
    from exporter.status.view import safe_link

    assert safe_link(url) == (url if shown else "")


@pytest.mark.parametrize(
    ("url", "base"),
    [
        ("http://admin:s3cret@prom:9090/", "http://prom:9090"),
        ("https://token@prom.example/prometheus?auth=x#frag", "https://prom.example/prometheus"),
        ("http://[::1]:9090", "http://[::1]:9090"),
        ("ftp://prom", ""),
        ("http://prom:notaport", ""),
    ],
)
def test_links_are_built_on_the_prometheus_url_without_credentials(url: str, base: str) -> None:
    from exporter.status.view import graph_url, link_base

    assert link_base(url) == base
    if base:
        assert graph_url(base, "up").startswith(f"{base}/graph?g0.expr=up")


def test_layer_and_api_alerts_are_pinned_on_their_own_cards_only() -> None:
    """A CDN ``type="user"`` budget burn is not the Redis ``user`` objective's, and the API
    burn lands on the API card."""
    from exporter.slo import default_slo_path, parse_slo
    from exporter.status.aggregate import alerts_for
    from exporter.status.queries import objectives

    raw = yaml.safe_load(default_slo_path().read_text())
    raw["layers"] = {"cdn": {"user": 0.9}}
    rows = objectives(parse_slo(raw))

    def alert(name: str, **labels: str) -> dict[str, object]:
        return {"labels": {"alertname": name, **labels}}

    firing = [
        alert(c.ALERT_HIT_RATE_BURN, layer="cdn", type="user"),
        alert(c.ALERT_API_LATENCY_BURN, cached="true"),
        alert(c.ALERT_HIT_RATE_BURN, type="session"),
    ]
    pinned = {o.key: [a["labels"] for a in alerts_for(o, firing)] for o in rows}
    assert pinned["hit-rate-cdn-user"] == [firing[0]["labels"]]
    assert pinned["api-latency"] == [firing[1]["labels"]]
    assert pinned["hit-rate-session"] == [firing[2]["labels"]]
    assert pinned["hit-rate-user"] == [] and pinned["hit-rate-all"] == []
    assert [o.title for o in rows if o.key in ("hit-rate-cdn-user", "api-latency")] == [
        "CDN hit rate, user",
        "API requests (cached) within 200ms",
    ]
