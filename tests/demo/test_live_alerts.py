"""Issue 4's live proof: degrade the cache for real and watch the alerts arrive.

The ``partial`` scenario: a quarter of the app's session reads go cold and the
delaying proxy slows 3 % of Redis calls by 15 ms, which breaks the session
hit-rate objective and the GET p99 but burns the budgets below the page
rates (so no page inhibits the tickets).  Prometheus (fast rules, 1 s scrapes)
must fire ``LowCacheHitRate`` for sessions and ``HighCacheLatency``, and
Alertmanager must deliver both to the webhook receiver by severity.  Then
every panel query of every generated dashboard is evaluated against this
Prometheus and must return data.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from exporter import metrics as m
from exporter.demo.receiver import Notification
from exporter.demo.stack import APP_JOB, EXPORTER_JOB, Stack
from exporter.rules import conventions as c
from tests.demo.conftest import poll, prometheus_query

RECEIVER_OF = {"page": "pager", "ticket": "ticket"}


def test_prometheus_scrapes_the_app_and_the_exporter(stack: Stack) -> None:
    for job in (APP_JOB, EXPORTER_JOB):
        poll(
            lambda job=job: [
                r for r in prometheus_query(stack, f'up{{job="{job}"}}') if r["value"][1] == "1"
            ],
            timeout=30,
            what=f"up{{job={job!r}}} == 1",
        )


def test_the_edge_and_the_app_feed_the_cdn_browser_and_api_series(stack: Stack) -> None:
    """nginx's log (read by the exporter) gives CDN hits and misses of the API and
    assets, the app's middleware browser revalidations of the page and the API latency
    of requests answered from Redis; the SLO's recordings of them have data."""
    assert stack.edge, "the live stack runs nginx in front of the app"
    wanted = {
        "CDN hits, api": f'{m.CACHE_HITS.name}{{layer="cdn", type="api", job="{EXPORTER_JOB}"}}',
        "CDN misses, api": f'{m.CACHE_MISSES.name}{{layer="cdn", type="api"}}',
        "CDN hits, asset": f'{m.CACHE_HITS.name}{{layer="cdn", type="asset"}}',
        "browser hits, html": f'{m.CACHE_HITS.name}{{layer="browser", type="html"}}',
        "browser misses, html": f'{m.CACHE_MISSES.name}{{layer="browser", type="html"}}',
        "API requests from cache": (
            f'{m.API_LATENCY.name}_count{{cached="true", route="/api/feature-flags/{{flag_id}}"}}'
        ),
    }
    for what, selector in wanted.items():
        poll(
            lambda selector=selector: [
                r
                for r in prometheus_query(stack, f"increase({selector}[30s])")
                if float(r["value"][1]) > 0
            ],
            timeout=60,
            what=what,
        )
    assert stack.slo.api is not None and set(stack.slo.layers) >= {"cdn", "browser"}
    poll(
        lambda: [
            r
            for r in prometheus_query(stack, f'{{slo="{c.SLO_API_LATENCY}"}}')
            if r["value"][1] != "NaN"
        ],
        timeout=60,
        what="the API objective's recordings",
    )


def firing(stack: Stack, alertname: str, **labels: str) -> list[Notification]:
    assert stack.receiver is not None
    return [
        n
        for n in stack.receiver.received()
        if n.status == "firing"
        and n.labels.get("alertname") == alertname
        and all(n.labels.get(k) == v for k, v in labels.items())
    ]


def test_degraded_cache_fires_low_hit_rate_for_sessions_and_high_latency(stack: Stack) -> None:
    # healthy first: the session objective holds, so what follows is caused by the switch
    poll(
        lambda: prometheus_query(stack, 'cache_type:cache_hit_ratio:rate5m{type="session"}'),
        timeout=30,
        what="the session hit-ratio recording has data",
    )
    assert not firing(stack, "LowCacheHitRate", type="session")

    stack.set_scenario("partial")

    low = poll(
        lambda: firing(stack, "LowCacheHitRate", type="session"),
        timeout=90,
        what="LowCacheHitRate{type=session} at the receiver",
    )
    slow = poll(
        lambda: firing(stack, "HighCacheLatency"),
        timeout=90,
        what="HighCacheLatency at the receiver",
    )
    for note in (low[0], slow[0]):
        assert note.receiver == RECEIVER_OF[note.labels["severity"]], note


# --- every dashboard panel query returns data -------------------------------------------

#: Grafana's built-in interval variables, as a panel of the last hour would see them
BUILTIN_VARIABLES = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "1h",
    "__range_s": "3600",
}
#: panels whose series are legitimately empty in this stack, with the reason
ALLOWED_EMPTY: dict[str, str] = {}
#: series the demo does not produce: the Redis topologies' (its Redis is standalone:
#: no replicas, Sentinel or Cluster; tests/generate/test_topology_live.py has them); each
#: such query is still run, and must be accepted by Prometheus, only not required to
#: return data.  The API objective's, the CDN's and the browser's are produced (nginx in
#: front of the app, the app behind the middleware) and must return data.
NOT_IN_THE_DEMO = (
    "redis_master_link",
    "redis_connected_slave",
    "redis_slave_",
    "redis_cluster",
    "redis_sentinel",
)


def panels(node: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in node.get("panels", []):
        found.append(panel)
        found.extend(panels(panel))  # rows carry their panels inside
    return found


def variable_values(dashboard: dict[str, Any]) -> dict[str, str]:
    values = dict(BUILTIN_VARIABLES)
    for var in dashboard.get("templating", {}).get("list", []):
        current = var.get("current") or {}
        value = current.get("value")
        if isinstance(value, list):
            value = "|".join(value)
        if var.get("type") == "datasource":
            continue
        if value in (None, "", "$__all"):
            value = ".*" if var.get("type") == "query" or var.get("includeAll") else ""
        values[var["name"]] = str(value)
    return values


def substitute(expr: str, values: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name not in values:
            raise AssertionError(f"unknown template variable {name!r} in {expr!r}")
        return values[name]

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)", replace, expr)


def test_every_dashboard_panel_query_returns_data(stack: Stack) -> None:
    assert stack.generated is not None
    files = sorted((stack.generated / "dashboards").glob("*.json"))
    assert files, f"the generator wrote no dashboards under {stack.generated}"
    # the degraded phase above has run: hit rates, latency, errors and evictions all have data
    queries = []
    for path in files:
        dashboard = json.loads(Path(path).read_text())
        values = variable_values(dashboard)
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                if target.get("expr"):
                    title = f"{path.stem}/{panel.get('title', '?')}"
                    queries.append((title, substitute(target["expr"], values)))
    assert queries
    empty = []
    for title, expr in queries:
        if title in ALLOWED_EMPTY:
            continue
        if any(part in expr for part in NOT_IN_THE_DEMO):
            prometheus_query(stack, expr)  # Prometheus accepts it; no data required
            continue
        try:
            poll(lambda expr=expr: prometheus_query(stack, expr), timeout=20, what=title)
        except AssertionError:
            empty.append(f"{title}: {expr}")
    assert not empty, "panels without data:\n" + "\n".join(empty)
