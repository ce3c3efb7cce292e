"""The topology alerts: one rule per row of the table, and a condition of a whole Redis
Cluster or of a Sentinel-monitored master fires once for it, however many nodes or
Sentinels report it, and once for each of two clusters told apart by a placement label
(promtool on the generated rules)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import yaml

from exporter.rules import conventions as c
from exporter.rules.builders import generate_rules
from exporter.rules.promtool_tests import Case, series
from exporter.rules.render import render_rule_file
from exporter.rules.topology import TOPOLOGY, Scope, scope_labels
from exporter.slo import SLO, load_slo, parse_slo
from tests.generate.conftest import REPO
from tests.support.prometheus import promtool

SHIPPED = REPO / "exporter" / "data" / "slo.yaml"
LABEL_REF = re.compile(r"\$labels\.(\w+)")


def placed_slo() -> SLO:
    """The shipped SLO file with ``service.group_by: [cluster]``."""
    text = SHIPPED.read_text()
    assert "  group_by: []" in text
    return parse_slo(yaml.safe_load(text.replace("  group_by: []", "  group_by: [cluster]")))


def test_the_group_is_the_table_one_rule_per_row_in_order() -> None:
    generated = generate_rules(load_slo())
    (topology,) = next(f for f in generated.files if f.name == c.FILE_TOPOLOGY).groups
    assert [r.alert for r in topology.rules] == [row.alert for row in TOPOLOGY]
    assert [row.alert for row in TOPOLOGY] == list(c.TOPOLOGY_ALERTS)


def test_aggregated_alerts_name_only_the_labels_they_keep() -> None:
    """An annotation of a cluster or master alert may not name ``instance``: after the
    aggregation it would render empty."""
    slo = placed_slo()
    rules = {r.alert: r for r in generate_rules(slo).alerts()}
    checked = 0
    for row in TOPOLOGY:
        if row.scope is Scope.NODE:
            continue
        kept = set(scope_labels(slo.service.group_by, row.scope))
        assert {"job", "cluster"} <= kept
        rule = rules[row.alert]
        for name, text in rule.annotations:
            named = set(LABEL_REF.findall(text))
            assert named <= kept, (row.alert, name, named - kept)
        assert f"by ({', '.join(scope_labels(slo.service.group_by, row.scope))})" in rule.expr
        checked += 1
    assert checked >= 6


def test_two_clusters_fire_once_each_however_many_nodes_or_sentinels_report(
    tmp_path: Path,
) -> None:
    slo = placed_slo()
    generated = generate_rules(slo)
    (rule_file,) = [f for f in generated.files if f.name == c.FILE_TOPOLOGY]
    (tmp_path / "rules.yml").write_text(render_rule_file(rule_file, "test", "production"))
    rules = {r.alert: r for r in generated.alerts()}
    job = {"job": "cache-slo-exporter"}
    state, down = rules[c.ALERT_CLUSTER_STATE_FAIL], rules[c.ALERT_SENTINEL_MASTER_DOWN]
    inputs = []
    # cluster eu: all three nodes say fail; cluster us: two of three
    for cluster, failing in (("eu", 3), ("us", 2)):
        for n in range(3):
            node = {**job, "cluster": cluster, "instance": f"{cluster}-{n}:6379"}
            inputs.append(series("redis_cluster_state", node, "0x10" if n < failing else "1x10"))
    # three Sentinels of cluster eu all see mymaster down
    for n in range(3):
        sentinel = {**job, "cluster": "eu", "instance": f"sentinel-{n}:26379",
                    "master_name": "mymaster", "master_address": "10.0.0.1:6379",
                    "master_status": "odown"}  # fmt: skip
        inputs.append(series("redis_sentinel_master_status", sentinel, "0x10"))
    case = Case("two clusters", inputs)
    at = timedelta(minutes=5)
    case.expect(at, state, [
        (state, 3.0, {**job, "cluster": "eu"}),
        (state, 2.0, {**job, "cluster": "us"}),
    ])  # fmt: skip
    case.expect(at, down, [(down, 0.0, {**job, "cluster": "eu", "master_name": "mymaster"})])
    doc = {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": [case.as_dict()]}
    (tmp_path / "test.yml").write_text(yaml.safe_dump(doc, sort_keys=False, width=1000))
    result = promtool("test", "rules", "test.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-1000:]
