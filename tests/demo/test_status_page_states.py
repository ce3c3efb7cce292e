"""The status page as an SRE reads it, in a real headless Chromium, against a real
Prometheus and a real Alertmanager set up so every state shows at once:

* the recorded SLIs are constants (recording rules of the generator's names and labels),
  so each objective's window SLI, budget and burn rates are known exactly;
* always-firing copies of the generated alerts (names, labels, runbook annotations);
* one alert silenced through Alertmanager's API, one inhibited by an inhibition rule;
* a second service with an SLO file of its own (other objectives, a 7-day window),
  and a third that Prometheus knows but no SLO file defines (listed, never judged).

Screenshots go to the test's own temp dir (``tmp_path``), never the repository.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import uvicorn
import yaml
from fastapi import FastAPI

from exporter.rules import conventions as c
from exporter.rules.builders import recording_windows
from exporter.rules.config import RuleConfig
from exporter.slo import load_slo, parse_slo
from exporter.status import build_router
from exporter.status.queries import NOW_WINDOW, Selection, objectives
from exporter.status.view import MINUS, TIMES
from tests.demo.test_status_page import CHROMIUM_FLAGS, sections
from tests.support.processes import free_port, require_binary
from tests.support.prometheus import AlertmanagerServer, PrometheusServer, wait_until

SLO = load_slo()
#: each objective's recorded SLI, the same over every window
SLI = {
    "hit-rate-all": 0.85,  # objective 80 %: met, 25 % of the budget left
    "hit-rate-session": 0.90,  # objective 95 %: missed, the budget spent twice
    "hit-rate-user": 0.80,  # objective 75 %: met, but its (silenced) alert fires
    "hit-rate-llm-response": 0.70,  # objective 60 %: met, its (inhibited) alert fires
    "latency-get": 0.0,  # objective 99 %: every call slow, the budget spent 100 times
    "api-latency": 0.97,  # objective 95 %: met, 40 % of the budget left
}
#: a second service in the same Prometheus, judged by its own file: other objectives, a
#: 7-day window, a type the first service does not have; one alert of its own
OTHER = "checkout"
OTHER_SLO = parse_slo(
    {
        "version": 1,
        "service": {"name": OTHER, "app_selector": {"job": "checkout-app", "namespace": "shop"}},
        "window": "7d",
        "hit_rate": {"objective": 0.95, "min_read_rate": 0.1},
        "latency": {"operation": "get", "threshold": "5ms", "objective": 0.999},
        "key_types": [{"name": "cart", "ttl": "1h", "tenant_scoped": True,
                       "hit_rate_objective": 0.9}],
    },
    "checkout.yaml",
)  # fmt: skip
OTHER_SLI = {
    "hit-rate-all": 0.97,  # objective 95 %: met (40 % left), but its own alert fires
    "hit-rate-cart": 0.85,  # objective 90 %: missed, 1.5 budgets spent
    "latency-get": 0.9995,  # objective 99.9 % within 5 ms: met, 50 % left
}
#: a service Prometheus has recordings of but no SLO file on the page defines
UNJUDGED = "search"
RUNBOOKS = RuleConfig()
#: alert name, labels; the silenced and the inhibited one are named by their type
FIRING: list[tuple[str, dict[str, str]]] = [
    (c.ALERT_REDIS_DOWN, {"severity": "page"}),
    (c.ALERT_HIT_RATE_BURN, {"severity": "page", "slo": c.SLO_HIT_RATE, "type": "session",
                             "long_window": "1h", "short_window": "5m"}),
    (c.ALERT_LOW_HIT_RATE, {"severity": "ticket", "type": "user"}),
    (c.ALERT_HIT_RATE_BURN, {"severity": "ticket", "slo": c.SLO_HIT_RATE,
                             "type": "llm-response", "long_window": "1d", "short_window": "2h"}),
]  # fmt: skip
for _name, _labels_ in FIRING:
    _labels_["service"] = SLO.service.name
#: the other service's alert: never on this service's page
OTHER_ALERT = (c.ALERT_LOW_HIT_RATE, {"severity": "ticket", "type": "all", "service": OTHER})
SECRET = "s3cret-pw"


def _labels(selector: str) -> dict[str, str]:
    """``name{a="b", c="d"}`` -> ``{"a": "b", "c": "d"}`` (the page's own selectors)."""
    return dict(re.findall(r'(\w+)="([^"]*)"', selector.split("{", 1)[1]))


def rules_file(path: Path) -> Path:
    records = []
    for slo, values in ((SLO, SLI), (OTHER_SLO, OTHER_SLI)):
        for o in objectives(slo, Selection(slo.service.name)):
            for window in recording_windows(slo):
                series = o.sli.recorded(window)
                records.append(
                    {
                        "record": series.split("{", 1)[0],
                        "expr": f"vector({values[o.key]})",
                        "labels": _labels(series),
                    }
                )
    unjudged = next(iter(objectives(SLO, Selection(UNJUDGED)))).recorded(NOW_WINDOW)
    records.append({"record": unjudged.split("{", 1)[0], "expr": "vector(0.5)",
                    "labels": _labels(unjudged)})  # fmt: skip
    alerts = [
        {
            "alert": name,
            "expr": "vector(1)",
            "labels": labels,
            "annotations": {"runbook_url": RUNBOOKS.runbook_url(name), "summary": f"{name} test"},
        }
        for name, labels in [*FIRING, OTHER_ALERT]
    ]
    groups = [
        {"name": "constant-slis", "interval": "1s", "rules": records},
        {"name": "always-firing", "interval": "1s", "rules": alerts},
    ]
    path.write_text(yaml.safe_dump({"groups": groups}), "utf-8")
    return path


def _serve(app: FastAPI) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Prometheus and Alertmanager in every state; the page served by uvicorn."""
    tmp = tmp_path_factory.mktemp("states")
    am_config = {
        "route": {"receiver": "null", "group_wait": "0s", "group_interval": "1s"},
        "receivers": [{"name": "null"}],
        "inhibit_rules": [
            {
                "source_matchers": [f'alertname="{c.ALERT_REDIS_DOWN}"'],
                "target_matchers": [f'alertname="{c.ALERT_HIT_RATE_BURN}"', 'severity="ticket"'],
            }
        ],
    }
    with AlertmanagerServer(tmp / "am", am_config) as am:
        now = datetime.now(UTC)
        silence = {
            "matchers": [{"name": "alertname", "value": c.ALERT_LOW_HIT_RATE, "isRegex": False}],
            "startsAt": now.isoformat(),
            "endsAt": (now + timedelta(hours=1)).isoformat(),
            "createdBy": "test",
            "comment": "known: user cache warming",
        }
        httpx.post(f"{am.url}/api/v2/silences", json=silence, timeout=10).raise_for_status()
        config = {"global": {"evaluation_interval": "1s"}}
        rules = rules_file(tmp / "rules.yml")
        with PrometheusServer(tmp / "prom", config, [rules], alertmanager_url=am.url) as prom:

            def settled() -> bool:
                states = {
                    a["labels"]["alertname"] + "/" + a["labels"].get("type", ""): a["status"]
                    for a in am.alerts()
                }
                user = states.get(f"{c.ALERT_LOW_HIT_RATE}/user", {})
                llm = states.get(f"{c.ALERT_HIT_RATE_BURN}/llm-response", {})
                return bool(user.get("silencedBy")) and bool(llm.get("inhibitedBy"))

            wait_until(settled, 30, "a silenced and an inhibited alert in Alertmanager")
            wait_until(
                lambda: len(prom.query("cache_operation:cache_latency_good_ratio:rate5m")) > 0,
                30,
                "the constant SLIs recorded",
            )
            app = FastAPI()
            # credentials in the URL: Prometheus ignores them, the page must never show them
            user_url = prom.url.replace("http://", f"http://admin:{SECRET}@")
            # the links lead to Prometheus by another name than the page queries it by
            external = prom.url.replace("127.0.0.1", "localhost")
            assert external != prom.url
            router = build_router(user_url, [SLO, OTHER_SLO], am.url,
                                  prometheus_links_url=external)  # fmt: skip
            app.include_router(router)
            for page in _serve(app):
                yield {"page": page, "prometheus": prom.url, "external": external,
                       "alertmanager": am.url}  # fmt: skip


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    browser = [require_binary("chromium"), *CHROMIUM_FLAGS]
    done = subprocess.run(
        [*browser, f"--user-data-dir={tmp_path / 'profile'}", *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done


@pytest.fixture(scope="module")
def dom(live: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> str:
    tmp = tmp_path_factory.mktemp("chromium")
    return chromium(tmp, "--dump-dom", live["page"]).stdout


def test_a_screenshot_of_the_page_is_written_to_the_tests_own_output(
    live: dict[str, str], tmp_path: Path
) -> None:
    shot = tmp_path / "status-page.png"
    chromium(tmp_path, "--hide-scrollbars", "--window-size=1400,2200", f"--screenshot={shot}",
             live["page"])  # fmt: skip
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1400, 2200)
    assert len(data) > 50_000  # a rendered page, not a blank one
    assert not list(Path(__file__).resolve().parents[2].glob("*.png"))


def _card(dom: str, key: str) -> str:
    return sections(dom)[key]


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def test_each_objective_shows_the_one_state_its_window_and_alerts_give(dom: str) -> None:
    states = {key: body.split("|", 1)[0] for key, body in sections(dom).items()}
    assert states == {
        "hit-rate-all": "objective ok",
        "hit-rate-session": "objective broken",
        "hit-rate-user": "objective at-risk",
        "hit-rate-llm-response": "objective at-risk",
        "latency-get": "objective broken",
        "api-latency": "objective ok",
    }
    badges = {
        key: re.search(r'<span class="state"[^>]*>([^<]*)</span>', body).group(1)  # type: ignore[union-attr]
        for key, body in sections(dom).items()
    }
    assert badges["hit-rate-session"] == "BROKEN" and badges["hit-rate-user"] == "AT RISK"
    assert badges["hit-rate-all"] == "OK"
    assert re.search(r'id="summary">6 objectives: 2 broken, 2 at risk, 2 ok ·', dom)
    # the legend defines each state once, naming the SLO window
    legend = _text(dom.split('id="states"', 1)[1].split("</div>", 1)[0])
    assert "BROKEN objective missed over the last 30d" in legend
    assert "AT RISK objective met over 30d" in legend
    # BROKEN always stands beside a window SLI below its objective and an overspent budget
    for key, body in sections(dom).items():
        over = float(re.search(r'class="over-window">([\d.]+) %', body).group(1))  # type: ignore[union-attr]
        target = float(re.search(r'class="target">([\d.]+) %', body).group(1))  # type: ignore[union-attr]
        budget = re.search(r'class="budget[^"]*">([^<]*)<', body).group(1)  # type: ignore[union-attr]
        assert (over < target) == body.startswith("objective broken|"), key
        assert budget.startswith("overspent") == (over < target), (key, budget)


def test_overspent_budgets_read_as_overspent_never_as_negative_percentages(dom: str) -> None:
    budgets = {
        key: re.search(r'class="budget[^"]*">([^<]*)<', body).group(1)  # type: ignore[union-attr]
        for key, body in sections(dom).items()
    }
    assert budgets == {
        "hit-rate-all": "25.0 % left",
        "hit-rate-session": f"overspent {TIMES}2",
        "hit-rate-user": "20.0 % left",
        "hit-rate-llm-response": "25.0 % left",
        "latency-get": f"overspent {TIMES}100",
        "api-latency": "40.0 % left",
    }
    assert not re.search(rf"[-{MINUS}]\s?\d[\d\s,.]*\s?%", _text(dom))


def test_each_burn_rate_is_labelled_with_the_window_its_alert_uses(dom: str) -> None:
    for o in objectives(SLO):
        body = _card(dom, o.key)
        windows = re.findall(r'<td class="window">([^<]*)</td>', body)
        assert windows == [b.window for b in o.burns], o.key
        factors = re.findall(r'<td class="fires-at"[^>]*>([^<]*)</td>', body)
        assert factors == [f"{b.factor:g}{TIMES}" for b in o.burns], o.key
        burns = re.findall(r'data-window="([^"]*)">([^<]*)<', body)
        expected = f"{(1 - SLI[o.key]) / (1 - o.target):.2f}{TIMES}"
        assert burns == [(b.window, expected) for b in o.burns], o.key
    session = _card(dom, "hit-rate-session")
    assert f'<td class="burn" data-window="1h">2.00{TIMES}</td>' in session  # < 14.4: not over
    latency = _card(dom, "latency-get")
    assert f'<td class="burn over" data-window="1h">100.00{TIMES}</td>' in latency


def test_held_back_alerts_are_shown_as_held_back_not_as_firing(dom: str) -> None:
    firing = dom.split('id="firing"', 1)[1].split('id="held-back"', 1)[0]
    held = dom.split('id="held-back"', 1)[1]
    assert 'data-alert="RedisDown"' in firing
    assert f'data-alert="{c.ALERT_HIT_RATE_BURN}"' in firing  # the session page
    assert "type=session" in firing and "type=llm-response" not in firing
    assert c.ALERT_LOW_HIT_RATE not in firing
    assert "(held back: silenced)" in held and c.ALERT_LOW_HIT_RATE in held
    assert "(held back: inhibited)" in held and "type=llm-response" in held
    assert 'id="alertmanager-note"' not in dom  # Alertmanager answered
    user = _card(dom, "hit-rate-user")
    assert "(held back: silenced)" in user and "1 (1 held back)" in user


def test_links_lead_to_prometheus_graphs_and_runbooks_without_credentials(
    dom: str, live: dict[str, str]
) -> None:
    assert SECRET not in dom and "admin" not in dom
    hrefs = [unescape(h) for h in re.findall(r'href="([^"]*)"', dom)]
    assert hrefs
    # the links use the external URL, never the one the page queries
    prometheus = live["external"]
    assert not [h for h in hrefs if h.startswith(live["prometheus"])]
    for href in hrefs:
        # Prometheus graphs, runbooks, or this page for another service
        assert href.startswith((f"{prometheus}/graph?", "https://", "?service=")), href
    # every card's title links to the graph of the very SLI it shows
    for o in objectives(SLO):
        link = re.search(r'class="sli-link" href="([^"]*)"', _card(dom, o.key))
        assert link, o.key
        query = parse_qs(urlsplit(unescape(link.group(1))).query)
        assert query["g0.expr"] == [o.sli.recorded(_window(NOW_WINDOW))], o.key
    # each firing alert links to its ALERTS series and its runbook annotation
    session = _card(dom, "hit-rate-session")
    alert = re.search(r'class="alert-link" href="([^"]*)"', session)
    assert alert
    expr = parse_qs(urlsplit(unescape(alert.group(1))).query)["g0.expr"][0]
    assert expr.startswith(f'ALERTS{{alertname="{c.ALERT_HIT_RATE_BURN}"')
    assert 'type="session"' in expr and 'alertstate="firing"' in expr
    runbook = re.search(r'class="runbook" href="([^"]*)"', session)
    assert runbook and unescape(runbook.group(1)) == RUNBOOKS.runbook_url(c.ALERT_HIT_RATE_BURN)
    # the installed Prometheus answers the links (its /graph leads to the classic UI)
    for href in {h for h in hrefs if h.startswith(prometheus)}:
        response = httpx.get(href, follow_redirects=True, timeout=10)
        assert response.status_code == 200, href
    # and the alert's series, queried, is the firing alert
    answer = httpx.get(f"{live['prometheus']}/api/v1/query", params={"query": expr},
                       timeout=10).json()  # fmt: skip
    assert len(answer["data"]["result"]) == 1


def _window(text: str) -> Any:
    from exporter.slo import parse_duration

    return parse_duration(text)


def test_sparklines_carry_a_scale_the_objective_and_a_time_axis(dom: str) -> None:
    for o in objectives(SLO):
        body = _card(dom, o.key)
        svg = body.split("<svg", 1)[1].split("</svg>", 1)[0]
        top = re.search(r'class="tick y-max"[^>]*>([^<]*)<', svg)
        bottom = re.search(r'class="tick y-min"[^>]*>([^<]*)<', svg)
        assert top and bottom, o.key
        hi, lo = (float(t.group(1).removesuffix(" %")) / 100 for t in (top, bottom))
        assert lo <= SLI[o.key] <= hi and lo <= o.target <= hi, o.key
        label = re.search(r'class="tick objective-label"[^>]*>([^<]*)<', svg)
        assert label and label.group(1) == f"objective {o.target * 100:.1f} %", o.key
        ticks = re.findall(r'class="tick x"[^>]*>([^<]*)<', svg)
        assert ticks == [f"{MINUS}3 h", f"{MINUS}2 h", f"{MINUS}1 h", "now"], o.key
        assert "<polyline" in svg and 'class="objective-line"' in svg


def test_without_alertmanager_the_page_says_delivery_is_unknown(live: dict[str, str]) -> None:
    from fastapi.testclient import TestClient

    app = FastAPI()
    app.include_router(build_router(live["prometheus"], SLO))
    html = TestClient(app).get("/").text
    assert 'id="alertmanager-note"' in html and "held back is not known" in html
    assert 'id="held-back"' not in html
    # the alerts are still listed, as firing in Prometheus
    firing = html.split('id="firing"', 1)[1]
    assert c.ALERT_LOW_HIT_RATE in firing


def test_each_service_is_judged_by_its_own_slo_file(
    live: dict[str, str], dom: str, tmp_path: Path
) -> None:
    """Two services in one Prometheus, each with its own file: the first file's is the
    default; ``?service=checkout`` shows checkout's objectives, window, thresholds,
    burn windows and states (never cache-app's), its series and only its alerts."""
    assert '<strong id="service">cache-app</strong>' in dom
    nav = dom.split('id="services"', 1)[1].split("</nav>", 1)[0]
    assert "<strong>cache-app</strong>" in nav and 'href="?service=checkout"' in nav
    assert OTHER not in dom.split('id="firing"', 1)[1]  # its alert is not this page's
    other = chromium(tmp_path, "--dump-dom", f"{live['page']}?service={OTHER}").stdout
    assert '<strong id="service">checkout</strong>' in other
    assert "SLO file checkout.yaml" in other
    cards = sections(other)
    assert {key: body.split("|", 1)[0] for key, body in cards.items()} == {
        "hit-rate-all": "objective at-risk",  # met over 7d, its own alert fires
        "hit-rate-cart": "objective broken",
        "latency-get": "objective ok",
    }
    targets = {k: re.search(r'class="target">([^<]*)<', b).group(1) for k, b in cards.items()}  # type: ignore[union-attr]
    assert targets == {"hit-rate-all": "95.0 %", "hit-rate-cart": "90.0 %", "latency-get": "99.9 %"}
    budgets = {k: re.search(r'class="budget[^"]*">([^<]*)<', b).group(1) for k, b in cards.items()}  # type: ignore[union-attr]
    assert budgets == {"hit-rate-all": "40.0 % left", "hit-rate-cart": f"overspent {TIMES}1.5",
                       "latency-get": "50.0 % left"}  # fmt: skip
    assert "GET within 5ms" in cards["latency-get"] and "threshold 5 ms" in cards["latency-get"]
    # judged over its own 7-day window, burn rates over its own alerts' windows
    assert all("<small>over 7d</small>" in body for body in cards.values())
    legend = _text(other.split('id="states"', 1)[1].split("</div>", 1)[0])
    assert "BROKEN objective missed over the last 7d" in legend and "30d" not in legend
    for o in objectives(OTHER_SLO):
        windows = re.findall(r'<td class="window">([^<]*)</td>', cards[o.key])
        assert windows == [b.window for b in o.burns], o.key
        burns = re.findall(r'data-window="([^"]*)">([^<]*)<', cards[o.key])
        expected = f"{(1 - OTHER_SLI[o.key]) / (1 - o.target):.2f}{TIMES}"
        assert burns == [(b.window, expected) for b in o.burns], o.key
        link = re.search(r'class="sli-link" href="([^"]*)"', cards[o.key])
        assert link, o.key
        expr = parse_qs(urlsplit(unescape(link.group(1))).query)["g0.expr"][0]
        assert 'service="checkout"' in expr, o.key
    assert [b.window for b in objectives(OTHER_SLO)[0].burns] != [
        b.window for b in objectives(SLO)[0].burns
    ]  # the two files' windows differ, so the check above tells them apart
    firing = other.split('id="firing"', 1)[1]
    assert "service=checkout" in firing and "service=cache-app" not in firing


def test_a_service_without_an_slo_file_is_listed_not_judged_and_refused(
    live: dict[str, str], dom: str
) -> None:
    nav = _text(dom.split('id="services"', 1)[1].split("</nav>", 1)[0])
    assert f"not judged here (no SLO file): {UNJUDGED}" in nav and "--slo" in nav
    assert f'href="?service={UNJUDGED}"' not in dom
    response = httpx.get(f"{live['page']}?service={UNJUDGED}", timeout=10)
    assert response.status_code == 400
    line = _text(response.text.split("<h1>Cache SLO status</h1>", 1)[1])
    assert f"expected one of the services this page has an SLO file for (cache-app, {OTHER}), " \
        f"got '{UNJUDGED}'; to judge it, add its file with --slo" in line
    assert "Traceback" not in response.text


@pytest.mark.parametrize(
    "query", ['service=x"}or vector(1)', "service=UPPER", "service=" + "a" * 80]
)
def test_a_service_the_page_cannot_name_is_refused_in_one_line(
    live: dict[str, str], query: str
) -> None:
    response = httpx.get(f"{live['page']}?{query}", timeout=10)
    assert response.status_code == 400
    assert "service: expected a lower-case name" in response.text
    assert "Traceback" not in response.text


def test_serve_wires_every_slo_file_and_the_external_url_into_the_page(
    live: dict[str, str],
) -> None:
    """``serve --slo A --slo B --prometheus-external-url`` as the server builds it."""
    from fastapi.testclient import TestClient

    from exporter.config import Settings
    from exporter.server import create_app

    settings = Settings(
        slo=SLO, slos=(SLO, OTHER_SLO), prometheus_url=live["prometheus"],
        prometheus_external_url=live["external"], alertmanager_url=live["alertmanager"],
    )  # fmt: skip
    with TestClient(create_app(settings, background=False)) as client:
        first = client.get("/")
        other = client.get("/", params={"service": OTHER})
        refused = client.get("/", params={"service": UNJUDGED})
    assert first.status_code == other.status_code == 200
    assert '<strong id="service">cache-app</strong>' in first.text
    assert '<strong id="service">checkout</strong>' in other.text
    assert 'id="hit-rate-cart"' in other.text and 'id="hit-rate-cart"' not in first.text
    assert f'href="{live["external"]}/graph?' in other.text
    assert f'href="{live["prometheus"]}/' not in other.text
    assert refused.status_code == 400
