"""The SLO status page in a real headless Chromium, against the live stack."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter import sli
from exporter.demo.stack import Stack
from exporter.rules import conventions as c
from exporter.status.queries import NOW_WINDOW, objectives
from tests.demo.conftest import poll, prometheus_query
from tests.support.processes import require_binary

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[list[str]]:
    profile = tmp_path / "chromium-profile"
    yield [require_binary("chromium"), *CHROMIUM_FLAGS, f"--user-data-dir={profile}"]


def dump_dom(browser: list[str], url: str) -> str:
    done = subprocess.run(
        [*browser, "--dump-dom", url], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def sections(dom: str) -> dict[str, str]:
    """id -> (class, inner HTML) of each objective section."""
    found = {}
    for match in re.finditer(r'<section class="([^"]*)" id="([^"]*)"[^>]*>(.*?)</section>', dom):
        found[match.group(2)] = f"{match.group(1)}|{match.group(3)}"
    return found


def test_status_page_shows_every_objective_with_a_value_and_marks_the_degraded_one(
    stack: Stack, browser: list[str], tmp_path: Path
) -> None:
    stack.set_scenario("degraded")  # cold sessions: the session objective breaks
    try:
        _shows_every_objective(stack, browser, tmp_path)
    finally:
        stack.set_scenario("healthy")  # the next tests read a stack in its usual state


def _shows_every_objective(stack: Stack, browser: list[str], tmp_path: Path) -> None:
    session = next(o for o in objectives(stack.slo) if o.key == "hit-rate-session")
    poll(  # the window SLI (summed 5m recordings) lags; the fast page tier fires first
        lambda: (
            [
                r
                for r in prometheus_query(stack, session.sli.recorded(stack.slo.window))
                if float(r["value"][1]) < session.target
            ]
            or [
                r
                for r in prometheus_query(stack, 'ALERTS{alertstate="firing", type="session"}')
                if r["metric"]["alertname"] in {c.ALERT_HIT_RATE_BURN, c.ALERT_LOW_HIT_RATE}
            ]
        ),
        timeout=90,
        what="the session objective missed over its window, or one of its alerts firing",
    )
    # every objective is fed: Redis (the app's client), the API (its middleware), the
    # browser and CDN layers (the middleware, nginx's log) and PostgreSQL (the exporter)
    fed = objectives(stack.slo)
    for objective in fed:  # every SLI has samples in Prometheus
        poll(
            lambda o=objective: [
                r for r in prometheus_query(stack, o.recorded(NOW_WINDOW)) if r["value"][1] != "NaN"
            ],
            timeout=60,
            what=f"{objective.key} has data",
        )
    without = {kt.name for kt in stack.slo.key_types if kt.hit_rate_objective is None}
    without -= {"rate-limit"}  # rate limits are counters, never read
    poll(  # rarely read types (api-key) need their first reads in the 5m window
        lambda: (
            without
            <= {
                r["metric"].get("type")
                for r in prometheus_query(
                    stack, objectives(stack.slo)[0].recorded(NOW_WINDOW).split("{")[0]
                )
                if r["value"][1] != "NaN"
            }
        ),
        timeout=60,
        what="every key type without an objective has a hit rate",
    )
    dom = dump_dom(browser, stack.urls["SLO status page"])
    shot = tmp_path / "status-page.png"
    done = subprocess.run(
        [*browser, "--hide-scrollbars", "--window-size=1400,2000", f"--screenshot={shot}",
         stack.urls["SLO status page"]],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0 and shot.read_bytes()[:4] == b"\x89PNG", done.stderr[-2000:]
    assert "<title>Cache SLO status" in dom
    assert "(recording rules)" in dom  # the stack loads the generated rules
    assert 'id="alertmanager-note"' not in dom  # the demo gives the page its Alertmanager
    shown = sections(dom)
    expected = [o.key for o in objectives(stack.slo)]
    assert sorted(shown) == sorted(expected)
    # the four layers and the API objective each have their cards, none of them "no data"
    layers = {o.sli.layer or "redis" for o in fed if o.kind != sli.API_LATENCY}
    assert {"redis", "cdn", "browser", "postgres"} <= layers, layers
    assert "api-latency" in shown and "no data" not in shown["api-latency"].lower()
    for key in ("hit-rate-cdn-api", "hit-rate-browser-html", "hit-rate-postgres-buffer"):
        assert key in shown and "no data" not in shown[key].lower(), key
    for key, body in shown.items():
        for cls in ("over-window", "now"):
            value = re.search(rf'class="{cls}">([^<]*)<', body)
            assert value and re.fullmatch(r"\d+\.\d\d %", value.group(1)), (key, cls, body[:300])
        assert "<svg" in body and "<polyline" in body, key
    assert shown["hit-rate-session"].startswith(("objective broken|", "objective at-risk|"))
    # BROKEN exactly where the SLI over the SLO window is below the objective
    marked = 0
    for key, body in shown.items():
        value = re.search(r'class="over-window">([\d.]+) %<', body)
        target = re.search(r'class="target">([\d.]+) %<', body)
        assert value and target, key
        is_broken = body.startswith("objective broken|")
        marked += is_broken
        assert is_broken == (float(value.group(1)) < float(target.group(1))), key
    summary = re.search(r'id="summary">(\d+) objectives: (\d+) broken', dom)
    assert summary and int(summary.group(1)) == len(expected)
    assert int(summary.group(2)) == marked
    # the key types without an objective are listed with their hit rate
    others = dict(re.findall(r'<tr><td>([\w-]+)</td><td class="rate">([^<]*)</td></tr>', dom))
    assert without <= set(others)
    assert all(re.fullmatch(r"\d+\.\d\d %", v) for v in others.values())


def test_status_page_names_an_unreachable_prometheus_without_credentials(
    tmp_path: Path,
) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from exporter.slo import load_slo
    from exporter.status import build_router
    from tests.support.processes import free_port

    app = FastAPI()
    url = f"http://admin:s3cret-pw@127.0.0.1:{free_port()}"
    app.include_router(build_router(url, load_slo()))
    response = TestClient(app).get("/")
    assert response.status_code == 503
    assert "127.0.0.1" in response.text and "could not be queried" in response.text
    # the whole user part masked: a Prometheus URL's lone user may be a token
    assert "s3cret-pw" not in response.text and "admin" not in response.text
    assert "http://***@127.0.0.1:" in response.text


async def test_without_recording_rules_the_page_falls_back_to_raw_queries(stack: Stack) -> None:
    """Against the same live Prometheus, but as if no rules were loaded: raw PromQL."""
    import httpx

    from exporter.status.aggregate import collect
    from exporter.status.prometheus import PrometheusAPI
    from exporter.status.render import render

    class WithoutRecordings(PrometheusAPI):
        async def recorded_names(self) -> set[str]:
            return set()

    poll(
        lambda: [
            r
            for r in prometheus_query(stack, objectives(stack.slo)[0].expr(NOW_WINDOW))
            if r["value"][1] != "NaN"
        ],
        timeout=30,
        what="raw overall hit rate has data",
    )
    async with httpx.AsyncClient(base_url=stack.urls["prometheus"], timeout=10) as client:
        page = await collect(WithoutRecordings(client), stack.slo)
    assert page.from_recordings is False
    assert page.p99 is not None and page.p99 > 0
    assert "organization" in page.other_types and "session" not in page.other_types
    for row in page.rows:  # the API and other layers' objectives included
        assert row.now is not None and 0 <= row.now <= 1, row.objective.key
        assert row.over_window is not None and 0 <= row.over_window <= 1, row.objective.key
        assert row.budget_left is not None and row.budget_left <= 1, row.objective.key
        assert all(b.value is not None and b.value >= 0 for b in row.burns), row.objective.key
    html = render(page, stack.slo, stack.urls["prometheus"])
    assert "(raw queries)" in html


async def test_a_query_prometheus_fails_blanks_its_values_not_the_page(stack: Stack) -> None:
    """The live Prometheus times out every range (sparkline) query: the page still
    renders every objective's values and says which queries failed."""
    import httpx

    from exporter.status.aggregate import collect
    from exporter.status.prometheus import PrometheusAPI
    from exporter.status.render import render

    class RangeQueriesTimeOut(PrometheusAPI):
        async def _get(self, path: str, params: dict[str, object] | None = None) -> object:
            if path == "/api/v1/query_range" and params:
                params = {**params, "timeout": "1ns"}  # Prometheus aborts the query itself
            return await super()._get(path, params)

    poll(
        lambda: prometheus_query(stack, objectives(stack.slo)[0].recorded(NOW_WINDOW)),
        timeout=30,
        what="recorded overall hit rate has data",
    )
    async with httpx.AsyncClient(base_url=stack.urls["prometheus"], timeout=10) as client:
        page = await collect(RangeQueriesTimeOut(client), stack.slo)
    assert page.failed and all("timeout" in reason for reason in page.failed)
    assert len(page.failed) == len(page.rows)
    assert all(row.series == [] for row in page.rows)
    assert all(row.now is not None and row.over_window is not None for row in page.rows)
    html = render(page, stack.slo, stack.urls["prometheus"])
    assert 'id="failed-queries"' in html
