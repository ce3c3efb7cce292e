"""The generated rules as Prometheus' own promtool sees them."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from exporter.cli import main
from exporter.rules import conventions as c
from exporter.rules.builders import generate_rules
from exporter.rules.model import Rule, number
from exporter.rules.render import render_rule_file
from exporter.slo import load_slo
from tests.generate.conftest import REPO
from tests.support.prometheus import promtool

RULE_FILES = sorted((REPO / "alerts").glob("*.rules.yml"))
TEST_FILES = sorted((REPO / "alerts" / "tests").glob("*.yml"))


def alert_rules(root: Path) -> list[dict[str, object]]:
    found = []
    for path in sorted((root / "alerts").glob("*.rules.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            found += [r for r in group["rules"] if "alert" in r]
    return found


def test_committed_rule_files_pass_promtool_check() -> None:
    assert RULE_FILES, "no alerts/*.rules.yml committed"
    result = promtool("check", "rules", *RULE_FILES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_fast_profile_rules_pass_promtool_check(fast_dir: Path) -> None:
    files = sorted((fast_dir / "alerts").glob("*.rules.yml"))
    result = promtool("check", "rules", *files)
    assert result.returncode == 0, result.stdout + result.stderr


def run_rule_tests(root: Path, files: list[Path]) -> dict[str, str]:
    """``promtool test rules`` on each file, side by side; failures by file name."""
    assert files, f"no promtool test files under {root}"
    with ThreadPoolExecutor(max_workers=len(files)) as pool:
        results = list(
            pool.map(lambda p: promtool("test", "rules", p.relative_to(root), cwd=root), files)
        )
    return {
        path.name: r.stdout[-4000:] + r.stderr[-1000:]
        for path, r in zip(files, results, strict=True)
        if r.returncode != 0
    }


@pytest.mark.slow
def test_promtool_rule_unit_tests_pass() -> None:
    """``promtool test rules alerts/tests/*.yml`` on the committed files."""
    failed = run_rule_tests(REPO, TEST_FILES)
    assert not failed, failed


@pytest.mark.slow
def test_generated_rule_tests_pass_for_another_slo_file(tmp_path: Path) -> None:
    """A 7-day window, a 99.9 % latency objective and a 30 % hit-rate objective (whose
    page and 3x tiers must be capped), an API objective over every request of two
    routes, and CDN (per path class and overall), browser and PostgreSQL hit-rate
    objectives: the scenarios still hold in promtool."""
    slo = tmp_path / "slo.yaml"
    slo.write_text(
        "version: 1\nwindow: 7d\n"
        "hit_rate: {objective: 0.8, min_read_rate: 0.5}\n"
        "latency: {operation: get, threshold: 10ms, objective: 0.999}\n"
        "key_types:\n"
        "  - {name: session, ttl: 24h, tenant_scoped: false, hit_rate_objective: 0.99}\n"
        "  - {name: report, ttl: 1h, tenant_scoped: true, hit_rate_objective: 0.3}\n"
        "api: {threshold: 250ms, objective: 0.99, cached: any,\n"
        "      routes: ['/api/users/{user_id}', '/api/v1.2/items']}\n"
        "layers: {cdn: {api: 0.9, all: 0.85}, browser: {asset: 0.8}, postgres: {buffer: 0.99}}\n"
    )
    assert main(["generate", "--slo", str(slo), "--out", str(tmp_path)]) == 0
    files = sorted((tmp_path / "alerts" / "tests").glob("*.yml"))
    page = (tmp_path / "alerts" / "tests" / "burn-rate-page.test.yml").read_text()
    assert f"{c.ALERT_HIT_RATE_BURN} postgres buffer" in page
    failed = run_rule_tests(tmp_path, files)
    assert not failed, failed


def test_a_postgres_layer_objective_gets_promtool_cases_fed_by_the_exporter(
    tmp_path: Path,
) -> None:
    """With ``layers.postgres`` in the SLO file the generated promtool tests hold a
    firing, a below-the-tier and a too-few case per burn tier of the PostgreSQL
    objective, over the exporter's ``cache_hits_total{layer="postgres", type="buffer"}``
    (what ``serve`` emits from the buffer cache), and its healthy young-data series."""
    text = (REPO / "exporter" / "data" / "slo.yaml").read_text()
    slo = tmp_path / "slo.yaml"
    slo.write_text(text + "layers: {postgres: {buffer: 0.99}}\n")
    assert main(["generate", "--slo", str(slo), "--out", str(tmp_path)]) == 0
    tests = {
        p.name: yaml.safe_load(p.read_text()) for p in (tmp_path / "alerts" / "tests").glob("*.yml")
    }
    exporter_series = 'cache_hits_total{job="cache-slo-exporter", layer="postgres", type="buffer"}'
    for name in ("burn-rate-page.test.yml", "burn-rate-ticket.test.yml"):
        cases = [
            case for case in tests[name]["tests"]
            if case["name"].startswith(f"{c.ALERT_HIT_RATE_BURN} postgres buffer ")
        ]  # fmt: skip
        kinds = {case["name"].rsplit(": ", 1)[1].split()[-1] for case in cases}
        assert {"fires", "tier", "few"} <= kinds, (name, [case["name"] for case in cases])
        fired = [
            alert["exp_labels"]
            for case in cases
            for check in case["alert_rule_test"]
            for alert in check.get("exp_alerts") or []
        ]
        assert fired and all(
            labels["layer"] == "postgres" and labels["type"] == "buffer" for labels in fired
        )
        assert all(
            any(s["series"] == exporter_series for s in case["input_series"]) for case in cases
        )
    young = [s["series"] for case in tests["young-data.test.yml"]["tests"]
             for s in case["input_series"]]  # fmt: skip
    assert exporter_series in young


def test_every_alert_rule_fires_in_some_promtool_test() -> None:
    """Each alerting rule (name + static labels) is expected to fire at least once."""
    expected: set[tuple[str, frozenset[tuple[str, str]]]] = set()
    for path in TEST_FILES:
        for group in yaml.safe_load(path.read_text())["tests"]:
            for check in group.get("alert_rule_test", []):
                for alert in check.get("exp_alerts") or []:
                    labels = frozenset(alert["exp_labels"].items())
                    expected.add((check["alertname"], labels))
    rules = alert_rules(REPO)
    names = {r["alert"] for r in rules}
    assert names == set(c.ALL_ALERTS)
    for rule in rules:
        static = frozenset(dict(rule.get("labels") or {}).items())  # type: ignore[call-overload]
        assert any(name == rule["alert"] and static <= labels for name, labels in expected), (
            f"no promtool test expects {rule['alert']} {dict(static)} to fire"
        )


def test_every_alert_also_has_a_silent_case() -> None:
    silent = set()
    for path in TEST_FILES:
        for group in yaml.safe_load(path.read_text())["tests"]:
            for check in group.get("alert_rule_test", []):
                if not check.get("exp_alerts"):
                    silent.add(check["alertname"])
    assert silent == set(c.ALL_ALERTS)


def _without_traffic_guard(rule: Rule, min_rate: str) -> Rule:
    """The rule with its trailing ``and <volume> >= min_read_rate`` clause removed."""
    guard = re.compile(r"\nand\n(?:(?!\nand\n).)*>= " + re.escape(min_rate) + r"$", re.S)
    return replace(rule, expr=guard.sub("", rule.expr))


@pytest.mark.slow
def test_low_traffic_cases_fail_without_the_guard(tmp_path: Path) -> None:
    """A silent "too few" case proves the guard only if, without the guard, the alert
    would fire: strip the guard from every rule and each such case must fail."""
    slo = load_slo()
    generated = generate_rules(slo)
    min_rate = number(slo.min_read_rate)
    stripped = 0
    for rule_file in generated.files:
        groups = []
        for group in rule_file.groups:
            rules = tuple(_without_traffic_guard(r, min_rate) for r in group.rules)
            stripped += sum(a.expr != b.expr for a, b in zip(rules, group.rules, strict=True))
            groups.append(replace(group, rules=rules))
        path = tmp_path / "alerts" / rule_file.name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render_rule_file(replace(rule_file, groups=tuple(groups)), "t", "t"))
    assert stripped >= 10
    quiet: set[str] = set()
    for path in TEST_FILES:
        target = tmp_path / "alerts" / "tests" / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text())
        for group in yaml.safe_load(path.read_text())["tests"]:
            # CacheEvictionSurge's floor is an eviction rate, not the read-rate guard
            if "too few" in group["name"] and c.ALERT_EVICTION_SURGE not in group["name"]:
                quiet.add(group["name"])
    assert len(quiet) >= 10
    files = sorted((tmp_path / "alerts" / "tests").glob("*.yml"))
    with ThreadPoolExecutor(max_workers=len(files)) as pool:
        results = pool.map(
            lambda p: promtool("test", "rules", p.relative_to(tmp_path), cwd=tmp_path), files
        )
        output = "".join(r.stdout + r.stderr for r in results)
    # promtool names each failing group: "name: <group name>,"
    held = sorted(name for name in quiet if f"name: {name}," not in output)
    assert not held, f"silent without the guard too, so they prove nothing: {held}"
