"""Dashboards: valid against Grafana's own schema, every query parses and names
only contract metrics or recorded series, thresholds from the SLO file."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import promql_parser
import pytest
from grafanalib._gen import DashboardEncoder

from exporter import metrics as m
from exporter.dashboards import DASHBOARDS, render_dashboards
from exporter.dashboards.common import uid_for
from exporter.dashboards.fixer import SCHEMA_VERSION
from exporter.rules.builders import generate_rules
from exporter.slo import load_slo

SCHEMA = json.loads((Path(__file__).parent / "grafana-dashboard.schema.json").read_text())
#: template variables as Grafana would expand them before sending the query
SUBSTITUTIONS = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    "$job": ".*",
    "$instance": ".*",
}
LABEL_VALUES = re.compile(r"^label_values\((?P<expr>.*), *\w+\)$")


@pytest.fixture(scope="module")
def dashboards(production: dict[str, str]) -> dict[str, dict[str, Any]]:
    return {p: json.loads(t) for p, t in production.items() if p.startswith("dashboards/")}


def contract_names() -> set[str]:
    specs = [s for s in vars(m).values() if isinstance(s, m.MetricSpec)]
    names = {s.name for s in specs}
    names |= {f"{s.name}_{x}" for s in specs if s.kind == "histogram" for x in ("bucket", "count")}
    recorded = {
        r.record for f in generate_rules(load_slo()).files for g in f.groups for r in g.rules
    }
    return names | {r for r in recorded if r} | {"up"}


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]
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
    validator = jsonschema.Draft7Validator(SCHEMA)
    for path, dashboard in dashboards.items():
        errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(dashboard)]
        assert not errors, (path, errors[:10])
        assert dashboard["schemaVersion"] == SCHEMA_VERSION


def test_raw_grafanalib_output_is_not_valid_so_the_fixer_matters() -> None:
    raw = json.loads(
        json.dumps(next(iter(DASHBOARDS.values()))(load_slo()).to_json_data(), cls=DashboardEncoder)
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


def test_template_variables_for_datasource_job_and_instance(
    dashboards: dict[str, dict[str, Any]],
) -> None:
    for path, dashboard in dashboards.items():
        names = [v["name"] for v in dashboard["templating"]["list"]]
        assert names == ["datasource", "job", "instance"], path
        for panel in dashboard["panels"]:
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


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
    specs = {s.name: s for s in vars(m).values() if isinstance(s, m.MetricSpec)}
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
