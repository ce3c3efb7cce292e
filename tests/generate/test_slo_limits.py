"""The SLO file's bounds hold what the generated rules can express: files at the
edges of every accepted range generate rules that promtool checks and whose
promtool unit tests pass (#10 item 8).

How the bounds were found (by generating and running promtool on edge values):
windows from 5h to 6d cannot be generated (the page tier's short window, 5m x
window/30d, falls under the tests' 1m step), 7d to 365d can (365d's tests take
about two minutes, so that edge is not run here); objectives of 0.9999999 pass and
0.99999999 fail (the budget-burn scenarios cannot resolve a 1e-8 budget), so
ratios keep at most 6 decimals; a latency objective of 0.5 fails (the ADR alert's
quantile is then the median) and 0.500001 passes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.cli import main
from exporter.slo import load_slo
from tests.generate.test_promtool import run_rule_tests
from tests.support.prometheus import promtool

EDGES = {
    "shortest-window-tightest-objectives": (
        "7d",
        "{objective: 0.999999, min_read_rate: 1000000.0}",
        "0.999999",
        ("0.000001", "0.999999"),
    ),
    # 0.94 / 0.8 = 1.175 is a tie of the burn annotation's %.2f: Prometheus' float64
    # reads 1.18, exact arithmetic 1.17; the generator now keeps its scenarios off ties
    "burn-rate-on-a-rounding-tie": (
        "30d",
        "{objective: 0.2, min_read_rate: 0.1}",
        "0.99",
        ("0.95", "0.5"),
    ),
    "odd-window-loosest-latency-objective": (
        "13d13h13m13s13ms",
        "{objective: 0.8, min_read_rate: 0.000001}",
        "0.500001",
        ("0.999999", "0.5"),
    ),
}

#: low hit-rate objectives inside the accepted range whose generated promtool tests
#: fail: a fault of the test generator (exporter/rules/promtool_tests.py), not of the
#: rules.  0.000001 over 14d: the "just below the capped tier" scenario (0.899999
#: against 0.9 x 0.999999) is within float noise of the threshold, so the alert fires.
GENERATOR_FAULTS = {
    "objective-0.000001-threshold-noise": (
        "14d",
        "{objective: 0.000001, min_read_rate: 0.1}",
        "0.99",
        ("0.95", "0.5"),
    ),
}


def generate_and_test(tmp_path: Path, edge: tuple[str, str, str, tuple[str, str]]) -> None:
    window, hit_rate, latency, (first, second) = edge
    slo = tmp_path / "slo.yaml"
    slo.write_text(
        f"version: 1\nwindow: {window}\nhit_rate: {hit_rate}\n"
        f"latency: {{operation: get, threshold: 10ms, objective: {latency}}}\n"
        "key_types:\n"
        f"  - {{name: session, ttl: 1s, tenant_scoped: false, hit_rate_objective: {first}}}\n"
        f"  - {{name: report, ttl: 365d, tenant_scoped: true, hit_rate_objective: {second}}}\n"
    )
    load_slo(slo)  # accepted: these are the edges, not beyond them
    assert main(["generate", "--slo", str(slo), "--out", str(tmp_path)]) == 0
    rules = sorted((tmp_path / "alerts").glob("*.rules.yml"))
    checked = promtool("check", "rules", *rules)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    failed = run_rule_tests(tmp_path, sorted((tmp_path / "alerts" / "tests").glob("*.yml")))
    assert not failed, failed


@pytest.mark.slow
@pytest.mark.parametrize("edge", sorted(EDGES))
def test_rules_generated_at_the_edges_pass_promtool(tmp_path: Path, edge: str) -> None:
    generate_and_test(tmp_path, EDGES[edge])


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="exporter/rules/promtool_tests.py precision (see above)")
@pytest.mark.parametrize("case", sorted(GENERATOR_FAULTS))
def test_known_faults_of_the_rule_test_generator(tmp_path: Path, case: str) -> None:
    generate_and_test(tmp_path, GENERATOR_FAULTS[case])
