"""Dashboards: valid against Grafana's own schema, every query parses and names
only contract metrics or recorded series, thresholds from the SLO file, burn-rate
windows from the alerts, separate variables for the application and the exporter,
alert annotations and runbook links, and a layout without gaps."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import promql_parser
import pytest
from grafanalib._gen import DashboardEncoder

from exporter import metrics as m
from exporter import sli
from exporter.dashboards import DASHBOARDS, render_dashboards
from exporter.dashboards.common import uid_for
from exporter.dashboards.fixer import SCHEMA_VERSION
from exporter.rules import conventions as c
from exporter.rules.builders import generate_rules, percent
from exporter.rules.config import RuleConfig
from exporter.slo import format_duration, load_slo, parse_duration

SCHEMA = json.loads((Path(__file__).parent / "grafana-dashboard.schema.json").read_text())
#: the fields a Prometheus annotation query keeps beside the generic ones.  Grafana's
#: schema types an annotation's query as ``AnnotationTarget`` (marked "TODO.. this should
#: just be a normal query target") and refuses every datasource's own fields; Grafana
#: itself writes a Prometheus annotation with exactly these.  Only they are let through.
PROMETHEUS_ANNOTATION = {
    "expr": {"type": "string"},
    "step": {"type": "string"},
    "titleFormat": {"type": "string"},
    "textFormat": {"type": "string"},
    "tagKeys": {"type": "string"},
    "useValueForTime": {"type": "boolean"},
}
#: template variables as Grafana would expand them before sending the query
SUBSTITUTIONS = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    "$app_job": ".*",
    "$exporter_job": ".*",
    "$service": ".*",
    "$cluster": ".*",
    "$instance": ".*",
}
LABEL_VALUES = re.compile(r"^label_values\((?P<expr>.*), *\w+\)$")


@pytest.fixture(scope="module")
def dashboards(production: dict[str, str]) -> dict[str, dict[str, Any]]:
    return {p: json.loads(t) for p, t in production.items() if p.startswith("dashboards/")}


def all_specs() -> list[m.MetricSpec]:
    """Every family metrics.py defines: by name, and inside its tables (INFO fields,
    cluster fields) where it defines them inline."""
    specs = [s for s in vars(m).values() if isinstance(s, m.MetricSpec)]
    return specs + [s for v in vars(m).values() if isinstance(v, tuple) for s in v
                    if isinstance(s, m.MetricSpec)]  # fmt: skip


def contract_names() -> set[str]:
    specs = all_specs()
    names = {s.name for s in specs}
    names |= {f"{s.name}_{x}" for s in specs if s.kind == "histogram" for x in ("bucket", "count")}
    recorded = {
        r.record for f in generate_rules(load_slo()).files for g in f.groups for r in g.rules
    }
    return names | {r for r in recorded if r} | {"up", "ALERTS"}


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]
    for annotation in dashboard.get("annotations", {}).get("list", []):
        if "expr" in annotation:
            yield f"annotation {annotation['name']}", annotation["expr"]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            found = LABEL_VALUES.match(var["query"])
            assert found, f"variable {var['name']}: not label_values(...): {var['query']}"
            yield f"variable {var['name']}", found["expr"]


def selectors(expr: str) -> list[str]:
    for var, value in SUBSTITUTIONS.items():
        expr = expr.replace(var, value)
    assert "$" not in expr, f"unsubstituted template variable in {expr}"
    names: list[str] = []
    promql_parser.walk(
        promql_parser.parse(expr),
        lambda n: names.append(n.name) if isinstance(n, promql_parser.VectorSelector) else None,
    )
    return names


def test_three_dashboards_are_generated(dashboards: dict[str, dict[str, Any]]) -> None:
    assert set(dashboards) == {f"dashboards/{name}" for name in DASHBOARDS}


def test_every_dashboard_is_valid_against_grafanas_schema(
    dashboards: dict[str, dict[str, Any]],
) -> None:
    schema = json.loads(json.dumps(SCHEMA))
    schema["definitions"]["AnnotationQuery"]["properties"].update(PROMETHEUS_ANNOTATION)
    validator = jsonschema.Draft7Validator(schema)
    for path, dashboard in dashboards.items():
        errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(dashboard)]
        assert not errors, (path, errors[:10])
        assert dashboard["schemaVersion"] == SCHEMA_VERSION


def test_raw_grafanalib_output_is_not_valid_so_the_fixer_matters() -> None:
    raw = json.loads(
        json.dumps(
            next(iter(DASHBOARDS.values()))(load_slo(), RuleConfig()).to_json_data(),
            cls=DashboardEncoder,
        )
    )
    messages = " ".join(e.message for e in jsonschema.Draft7Validator(SCHEMA).iter_errors(raw))
    assert raw["schemaVersion"] == 12
    assert "Additional properties are not allowed" in messages
    for legacy in ("'rows'", "'hideControls'", "'span'"):
        assert legacy in messages, legacy
    assert '"value": "null"' in json.dumps(raw)


def test_no_string_null_thresholds_or_legacy_keys(production: dict[str, str]) -> None:
    for path, text in production.items():
        if path.startswith("dashboards/"):
            assert '"null"' not in text, path
            for legacy in ('"rows"', '"span"', '"hideControls"', '"sharedCrosshair"'):
                assert legacy not in text, (path, legacy)


def test_every_query_parses_and_names_only_known_metrics(
    dashboards: dict[str, dict[str, Any]],
) -> None:
    known = contract_names()
    count = 0
    for path, dashboard in dashboards.items():
        for where, expr in queries(dashboard):
            names = selectors(expr)
            assert names, (path, where, expr)
            unknown = set(names) - known
            assert not unknown, (path, where, unknown)
            count += 1
    assert count > 20


def test_separate_variables_for_the_application_and_the_exporter_job(
    dashboards: dict[str, dict[str, Any]],
) -> None:
    """Each dashboard defines exactly the variables its queries use, the application's
    job and the exporter's job apart (one ``$job`` for both emptied half the panels)."""
    used_by = {}
    for path, dashboard in dashboards.items():
        names = [v["name"] for v in dashboard["templating"]["list"]]
        assert names[0] == "datasource" and "job" not in names, path
        used = set()
        for _where, expr in queries(dashboard):
            used |= set(re.findall(r"\$(\w+)", expr)) - {"__rate_interval", "__interval"}
        assert set(names[1:]) == used, (path, names, used)
        used_by[path] = used
        for panel in dashboard["panels"]:
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        for var in dashboard["templating"]["list"][1:]:
            assert var["includeAll"] and var["allValue"] == ".*", (path, var["name"])
    overview = used_by["dashboards/cache-slo-overview.json"]
    assert {"app_job", "service"} <= overview and "exporter_job" not in overview
    server = used_by["dashboards/cache-redis-server.json"]
    assert "exporter_job" in server and "app_job" not in server
    assert {"app_job", "exporter_job"} <= used_by["dashboards/cache-layers.json"]
    jobs = {
        v["name"]: v["query"]
        for d in dashboards.values()
        for v in d["templating"]["list"]
        if v["name"].endswith("_job")
    }
    assert jobs == {
        "app_job": f"label_values({m.CACHE_HITS.name}, job)",
        "exporter_job": f"label_values({m.REDIS_UP.name}, job)",
    }


def test_every_panel_of_the_application_reads_its_job_and_the_exporters_its_own(
    dashboards: dict[str, dict[str, Any]],
) -> None:
    """A client series filtered by the exporter's job (or the reverse) would be empty."""
    client = {m.CACHE_HITS.name, m.CACHE_MISSES.name, m.CACHE_ERRORS.name}
    client |= {f"{m.CACHE_LATENCY.name}_{x}" for x in ("bucket", "count")}
    # the application's middleware (exporter.asgi) is in the application's process too
    client |= {f"{m.API_LATENCY.name}_{x}" for x in ("bucket", "count")}
    client |= {m.CACHE_POLICY_VIOLATIONS.name}
    exporter_layers = ('layer="postgres"', 'layer="cdn"')  # hits the exporter reads
    for path, dashboard in dashboards.items():
        for where, expr in queries(dashboard):
            for name, matchers in re.findall(r"(\w+)\{([^}]*)\}", expr):
                if name == "up":
                    continue  # every job has it
                if "$app_job" in matchers or "$exporter_job" in matchers:
                    is_client = name in client and not any(x in matchers for x in exporter_layers)
                    wanted = "$app_job" if is_client else "$exporter_job"
                    assert wanted in matchers, (path, where, name, matchers)


def test_uids_are_stable_and_derived_from_the_title(
    dashboards: dict[str, dict[str, Any]],
) -> None:
    uids = {d["uid"] for d in dashboards.values()}
    assert len(uids) == len(dashboards)
    for dashboard in dashboards.values():
        assert dashboard["uid"] == uid_for(dashboard["title"])
        assert len(dashboard["uid"]) <= 40


def _thresholds(panel: dict[str, Any]) -> list[float]:
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    return [s["value"] for s in steps[1:]]


def test_thresholds_come_from_the_slo_file(tmp_path: Path) -> None:
    custom = tmp_path / "slo.yaml"
    custom.write_text(
        "version: 1\nwindow: 28d\n"
        "hit_rate: {objective: 0.85, min_read_rate: 0.1}\n"
        "latency: {operation: get, threshold: 5ms, objective: 0.995}\n"
        "key_types:\n"
        "  - {name: session, ttl: 1h, tenant_scoped: false, hit_rate_objective: 0.97}\n"
    )
    overview = json.loads(
        render_dashboards(load_slo(custom), "slo.yaml")["cache-slo-overview.json"]
    )
    panels = {p["title"]: p for p in overview["panels"]}
    assert _thresholds(panels["Hit rate: session reads (objective 97%)"]) == [0.97]
    assert _thresholds(panels["Hit rate: all reads (objective 85%)"]) == [0.85]
    latency = panels["GET latency against 5ms"]
    assert _thresholds(latency) == [0.005]
    legends = [t["legendFormat"] for t in latency["targets"]]
    assert legends == ["p50", "p95", "p99.5"]


def instance_source(name: str) -> str:
    """Whose address a series' ``instance`` is, as Prometheus stores it.

    The exporter labels ``redis_*`` and its self-metrics with the Redis address, and its
    scrape job keeps it (``honor_labels: true``); every other series, ``up`` included,
    gets the scrape target's address (the app's, or the exporter's for its per-type
    ``cache_*`` series, which carry no ``instance`` of their own).
    """
    specs = {s.name: s for s in all_specs()}
    spec = specs.get(name.removesuffix("_bucket").removesuffix("_count"))
    return "redis" if spec is not None and "instance" in spec.labels else "target"


def test_instance_variable_lists_values_the_panels_filter_on(
    dashboards: dict[str, dict[str, Any]],
) -> None:
    """Picking one instance must not empty the panels: every selector filtered by
    ``$instance`` reads series whose ``instance`` is the same kind of address as the
    variable's source (``up``'s is the exporter's, ``redis_up``'s the Redis one)."""
    for path, dashboard in dashboards.items():
        var = next(v for v in dashboard["templating"]["list"] if v["name"] == "instance")
        found = LABEL_VALUES.match(var["query"])
        assert found, var["query"]
        (source,) = selectors(found["expr"])
        wrong = set()
        for where, expr in queries(dashboard):
            if where.startswith("variable"):
                continue
            for vector in re.findall(r"(\w+)\{[^}]*\$instance", expr):
                if instance_source(vector) != instance_source(source):
                    wrong.add((where, vector))
        assert not wrong, (path, f"instance from {source}", sorted(wrong))


# --- what an SRE keeps the overview for --------------------------------------------------


def _panels(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["title"]: p for p in dashboard["panels"]}


def test_hit_rate_by_type_draws_each_types_own_objective(
    dashboards: dict[str, dict[str, Any]],
) -> None:
    """Not one overall threshold for every type: a line per type that has an objective."""
    panel = _panels(dashboards["dashboards/cache-slo-overview.json"])["Hit rate by type"]
    assert _thresholds(panel) == []  # no panel-wide threshold
    assert panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] == "off"
    found = {}
    for override in panel["fieldConfig"]["overrides"]:
        props = {p["id"]: p["value"] for p in override["properties"]}
        assert props["custom.thresholdsStyle"] == {"mode": "line"}
        found[override["matcher"]["options"]] = [s["value"] for s in props["thresholds"]["steps"]]
    slo = load_slo()
    assert found == {
        kt.name: [None, kt.hit_rate_objective]
        for kt in slo.key_types
        if kt.hit_rate_objective is not None
    }
    assert panel["targets"][0]["legendFormat"] == "{{type}}"  # overrides match by type


def test_a_latency_heatmap_of_the_slo_operations_buckets(
    dashboards: dict[str, dict[str, Any]],
) -> None:
    (panel,) = [
        p for p in dashboards["dashboards/cache-slo-overview.json"]["panels"]
        if p["type"] == "heatmap"
    ]  # fmt: skip
    (target,) = panel["targets"]
    assert target["format"] == "heatmap" and target["legendFormat"] == "{{le}}"
    assert target["expr"].startswith("sum by (le) (rate(cache_latency_seconds_bucket{")
    assert f'operation="{load_slo().latency.operation}"' in target["expr"]
    assert panel["options"]["calculate"] is False  # the buckets are already counted
    assert panel["options"]["yAxis"]["unit"] == "s"


def test_each_sli_is_drawn_against_its_objective(
    dashboards: dict[str, dict[str, Any]],
) -> None:
    from exporter import sli

    panels = _panels(dashboards["dashboards/cache-slo-overview.json"])
    for o in sli.objectives(load_slo()):
        (panel,) = [
            p for t, p in panels.items()
            if t == f"{o.title} (objective {percent(o.target)})"
            or (t.startswith(("Hit rate: ", "Latency: "))
            and t.endswith(f"(objective {percent(o.target)})")
            and (o.value in t.lower() or (o.value == "all" and "all reads" in t)))
        ]  # fmt: skip
        assert _thresholds(panel) == [o.target], panel["title"]
        exprs = [t["expr"] for t in panel["targets"]]
        assert o.record(timedelta(minutes=5)) in exprs[1], panel["title"]  # what alerts read


def test_burn_rate_panels_use_the_windows_and_factors_of_the_alerts(
    dashboards: dict[str, dict[str, Any]],
) -> None:
    """Read from the generated burn-rate alerts: each objective's panel draws the burn
    rate over every long and short window its alerts read, with a line at each factor."""
    from exporter import sli

    rules = [
        r for f in generate_rules(load_slo()).files for g in f.groups for r in g.rules
        if r.tier is not None
    ]  # fmt: skip
    panels = _panels(dashboards["dashboards/cache-slo-overview.json"])
    for o in sli.objectives(load_slo()):
        own = [r for r in rules if r.objective == o]
        assert own, o
        windows = {c.window_name(r.tier.long) for r in own if r.tier}
        windows |= {c.window_name(r.tier.short) for r in own if r.tier}
        factors = sorted({float(r.tier.factor) for r in own if r.tier})
        what = "GET latency" if o.kind == sli.LATENCY else o.title if o.kind in (
            sli.API_LATENCY, sli.LAYER_HIT_RATE) else (
            "all reads" if o.value == "all" else f"{o.value} reads")  # fmt: skip
        panel = panels[f"Burn rate: {what}"]
        legends = {t["legendFormat"] for t in panel["targets"]}
        assert legends == windows, (what, legends, windows)
        assert _thresholds(panel) == factors, what
        for t in panel["targets"]:
            assert o.record(parse_duration(t["legendFormat"])) in t["expr"], what


def test_budget_burn_down_over_the_slo_window(dashboards: dict[str, dict[str, Any]]) -> None:
    slo = load_slo()
    window = format_duration(slo.window)
    panel = _panels(dashboards["dashboards/cache-slo-overview.json"])[
        f"Error budget left over the last {window}"
    ]
    assert panel["timeFrom"] == window
    exprs = [t["expr"] for t in panel["targets"]]
    assert len(exprs) == len(sli.objectives(slo))  # one per objective, API included
    assert all(e.startswith(f"{c.RECORD_BUDGET_REMAINING}{{") for e in exprs)


def test_overspent_budgets_read_as_overspent(dashboards: dict[str, dict[str, Any]]) -> None:
    stats = [
        p for p in dashboards["dashboards/cache-slo-overview.json"]["panels"]
        if p["title"].startswith("Budget left: ")
    ]  # fmt: skip
    assert len(stats) == len(sli.objectives(load_slo()))
    for panel in stats:
        (mapping,) = (
            panel["options"].get("mappings") or panel["fieldConfig"]["defaults"]["mappings"]
        )
        assert mapping["type"] == "range" and mapping["options"]["from"] <= -1e9
        assert -1e-6 < mapping["options"]["to"] < 0  # exactly spent (0) is not overspent
        assert mapping["options"]["result"]["text"] == "overspent"


def test_firing_alerts_annotate_every_dashboard(dashboards: dict[str, dict[str, Any]]) -> None:
    for path, dashboard in dashboards.items():
        (annotation,) = dashboard["annotations"]["list"]
        assert annotation["enable"] and annotation["datasource"]["uid"] == "${datasource}"
        assert annotation["expr"].startswith('ALERTS{alertstate="firing"'), path
        assert "{{alertname}}" in annotation["titleFormat"]


def test_runbook_links_are_the_runbooks_the_alerts_carry(
    dashboards: dict[str, dict[str, Any]],
) -> None:
    annotated = {
        r.alert: dict(r.annotations)["runbook_url"]
        for f in generate_rules(load_slo()).files
        for g in f.groups
        for r in g.rules
        if r.alert
    }
    linked: dict[str, str] = {}
    for dashboard in dashboards.values():
        for panel in dashboard["panels"]:
            for link in panel.get("links", []):
                name = link["title"].removeprefix("Runbook: ")
                assert link["url"] == annotated[name], name
                linked[name] = link["url"]
    slo_alerts = {c.ALERT_LOW_HIT_RATE, c.ALERT_HIGH_LATENCY, c.ALERT_HIT_RATE_BURN,
                  c.ALERT_LATENCY_BURN, c.ALERT_REDIS_DOWN, c.ALERT_MEMORY_NEAR_MAX,
                  c.ALERT_EVICTION_SURGE, c.ALERT_CLIENT_ERRORS}  # fmt: skip
    assert slo_alerts <= set(linked)


def test_runbook_links_follow_the_runbook_base_url_given_to_generate(tmp_path: Path) -> None:
    from exporter.generate import render_all

    config = RuleConfig(runbook_base_url="https://runbooks.example/cache/")
    files, _ = render_all(load_slo(), source="slo.yaml", config=config)
    overview = json.loads(files["dashboards/cache-slo-overview.json"])
    urls = {link["url"] for p in overview["panels"] for link in p.get("links", [])}
    assert urls and all(u.startswith("https://runbooks.example/cache/") for u in urls)
    assert f"https://runbooks.example/cache/{c.ALERT_HIT_RATE_BURN}.md" in urls


def test_every_dashboard_tiles_the_grid_without_gaps_or_overlaps(
    dashboards: dict[str, dict[str, Any]],
) -> None:
    for path, dashboard in dashboards.items():
        bottom = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in dashboard["panels"])
        grid = [[0] * 24 for _ in range(bottom)]
        for panel in dashboard["panels"]:
            pos = panel["gridPos"]
            assert pos["x"] + pos["w"] <= 24, (path, panel["title"])
            for y in range(pos["y"], pos["y"] + pos["h"]):
                for x in range(pos["x"], pos["x"] + pos["w"]):
                    grid[y][x] += 1
        empty = sorted({(y, x) for y, row in enumerate(grid) for x, n in enumerate(row) if n == 0})
        double = sorted({(y, x) for y, row in enumerate(grid) for x, n in enumerate(row) if n > 1})
        assert not empty and not double, (path, empty[:5], double[:5])


def test_the_layout_refuses_a_row_with_a_gap() -> None:
    from exporter.dashboards.common import layout, timeseries

    with pytest.raises(ValueError, match="column 12"):
        layout([timeseries("a", [("up", "")], width=12)])
    with pytest.raises(ValueError, match="height"):
        layout([timeseries("a", [("up", "")], width=12), stat_panel(12)])


def stat_panel(width: int) -> Any:
    from exporter.dashboards.common import stat

    return stat("b", "up", width=width)


FLEET_SLO = (
    "version: 1\nwindow: 28d\n"
    "service: {name: checkout, app_selector: {job: checkout-api}, "
    "exporter_selector: {job: checkout-cache-exporter}, group_by: [cluster, namespace]}\n"
    "hit_rate: {objective: 0.85, min_read_rate: 0.1}\n"
    "latency: {operation: get, threshold: 5ms, objective: 0.995}\n"
    "key_types:\n"
    "  - {name: session, ttl: 1h, tenant_scoped: false, hit_rate_objective: 0.97}\n"
)


@pytest.mark.parametrize("grouped", [False, True], ids=["shipped", "service-and-group-by"])
def test_fleet_variables_narrow_every_recorded_series_and_alert(
    grouped: bool, dashboards: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    """Every recorded SLI, budget and burn rate and the ALERTS annotation carry the
    ``service`` variable and one per grouping label of the SLO file; the service
    variable starts on the file's own service, the job variables on its selectors."""
    slo = load_slo()
    if grouped:
        (tmp_path / "slo.yaml").write_text(FLEET_SLO)
        slo = load_slo(tmp_path / "slo.yaml")
        dashboards = {
            f"dashboards/{name}": json.loads(text)
            for name, text in render_dashboards(slo, "slo.yaml").items()
        }
    labels = ("service", *slo.service.group_by)
    recorded = {r.record for f in generate_rules(slo).files for g in f.groups for r in g.rules} - {
        None
    }
    count = 0
    for path, dashboard in dashboards.items():
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        assert [n for n in variables if n in labels or n == "cluster"] == list(labels), path
        assert variables["service"]["current"]["value"] == slo.service.name, path
        for name in ("app_job", "exporter_job"):
            if name in variables:
                assert variables[name]["current"]["value"].startswith(
                    ("checkout-", "cache-") if grouped else "cache-"
                ), (path, name)
        for where, expr in queries(dashboard):
            if where.startswith("variable"):
                continue
            for name, matchers in re.findall(r"([\w:]+)\{([^}]*)\}", expr):
                if name in recorded or name == "ALERTS":
                    for label in labels:
                        assert f'{label}=~"${label}"' in matchers, (path, where, name, label)
                    assert 'service="' not in matchers  # the variable, not a fixed service
                    count += 1
    assert count > 20
    overview = dashboards["dashboards/cache-slo-overview.json"]
    if grouped:  # one line per placement: the legends name it
        burn = next(p for p in overview["panels"] if p["title"].startswith("Burn rate: "))
        assert all("{{cluster}} {{namespace}}" in t["legendFormat"] for t in burn["targets"])


def test_scoped_adds_matchers_to_every_selector() -> None:
    from exporter.dashboards.common import scoped

    assert scoped('(1 - a{type="x"}) / 0.05 + b{}', 's="1"') == (
        '(1 - a{s="1", type="x"}) / 0.05 + b{s="1"}'
    )


def test_every_objective_is_named_by_what_it_measures(
    dashboards: dict[str, dict[str, Any]],
) -> None:
    """Each objective's panels carry its own title and its own burn-rate runbook: the API
    objective is 'API requests ... within 200ms', not a hit rate of 'true reads'."""
    overview = dashboards["dashboards/cache-slo-overview.json"]
    titles = [str(p.get("title", "")) for p in overview["panels"]]
    assert not [t for t in titles if "true reads" in t or "false reads" in t]
    slo = load_slo()
    for o in sli.objectives(slo):
        if o.kind != sli.API_LATENCY:
            continue
        assert f"Budget left: {o.title}" in titles
        burn = next(p for p in overview["panels"] if p.get("title") == f"Burn rate: {o.title}")
        assert [link["title"] for link in burn["links"]] == [
            f"Runbook: {c.ALERT_API_LATENCY_BURN}"
        ]
        break
    else:
        pytest.fail("the shipped SLO file has an API objective")


#: a service whose selectors say more than a job: raw panels must keep every matcher
SELECTOR_SLO = (
    "version: 1\nwindow: 30d\n"
    "service: {name: checkout, app_selector: {job: checkout-api, namespace: shop}, "
    "exporter_selector: {namespace: shop, app: cache-exporter}}\n"
    "hit_rate: {objective: 0.85, min_read_rate: 0.1}\n"
    "latency: {operation: get, threshold: 5ms, objective: 0.995}\n"
    "layers: {postgres: {buffer: 0.9}}\n"
    "key_types:\n"
    "  - {name: session, ttl: 1h, tenant_scoped: false, hit_rate_objective: 0.97}\n"
)


def selector_dashboards(tmp_path: Path) -> dict[str, dict[str, Any]]:
    (tmp_path / "slo.yaml").write_text(SELECTOR_SLO)
    slo = load_slo(tmp_path / "slo.yaml")
    return {
        f"dashboards/{name}": json.loads(text)
        for name, text in render_dashboards(slo, "slo.yaml").items()
    }


def test_raw_panels_select_on_every_matcher_of_the_slo_files_selectors(tmp_path: Path) -> None:
    """``namespace="shop"`` (and any other matcher of ``app_selector`` /
    ``exporter_selector``) is on every raw selector beside its job variable, which starts
    on the file's job (or All where the selector names none) and lists only the jobs
    within the other matchers; the dashboards stay valid against Grafana's schema."""
    dashboards = selector_dashboards(tmp_path)
    test_every_dashboard_is_valid_against_grafanas_schema(dashboards)
    slo = load_slo(tmp_path / "slo.yaml")
    recorded = {r.record for f in generate_rules(slo).files for g in f.groups for r in g.rules}
    recorded |= {"ALERTS"}
    app_matchers = 'job=~"$app_job", namespace="shop"'
    exporter_matchers = 'job=~"$exporter_job", namespace="shop", app="cache-exporter"'
    seen = {"app": 0, "exporter": 0}
    for path, dashboard in dashboards.items():
        for where, expr in queries(dashboard):
            for name, matchers in re.findall(r"([\w:]+)\{([^}]*)\}", expr):
                if "$app_job" in matchers:
                    assert matchers.startswith(app_matchers), (path, where, name, matchers)
                    seen["app"] += 1
                elif "$exporter_job" in matchers:
                    assert matchers.startswith(exporter_matchers), (path, where, name, matchers)
                    seen["exporter"] += 1
                elif not where.startswith("variable"):  # else recorded: the fleet variables
                    assert name in recorded, (path, where, name, matchers)
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        if "app_job" in variables:
            assert variables["app_job"]["query"] == (
                f'label_values({m.CACHE_HITS.name}{{namespace="shop"}}, job)'
            )
            assert variables["app_job"]["current"]["value"] == "checkout-api"
        if "exporter_job" in variables:
            assert variables["exporter_job"]["query"] == (
                f'label_values({m.REDIS_UP.name}{{namespace="shop", app="cache-exporter"}}, job)'
            )
            assert variables["exporter_job"]["current"]["value"] == "$__all"
    assert seen["app"] > 10 and seen["exporter"] > 10
    overview = dashboards["dashboards/cache-slo-overview.json"]
    names = [v["name"] for v in overview["templating"]["list"]]
    assert "exporter_job" in names  # the PostgreSQL objective reads the exporter's series
    instance = next(v for v in overview["templating"]["list"] if v["name"] == "instance")
    assert instance["query"] == f"label_values(up{{{app_matchers}}}, instance)"
