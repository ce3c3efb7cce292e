"""``generate`` for a platform (#11) and what a user reads from it (#14 item 5)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from exporter.cli import main
from exporter.rules import conventions as c
from exporter.rules.config import DEFAULT_RUNBOOK_BASE_URL
from exporter.slo import SLOError, load_slo, parse_slo, parse_yaml

BASE = Path(__file__).resolve().parents[2] / "exporter" / "data" / "slo.yaml"


def slo_file(tmp_path: Path, name: str, service: str) -> Path:
    text = BASE.read_text().replace("  name: cache-app\n", f"  name: {service}\n", 1)
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def test_several_slo_files_write_each_services_files_apart(tmp_path: Path) -> None:
    a, b = slo_file(tmp_path, "a", "checkout"), slo_file(tmp_path, "b", "search")
    out = tmp_path / "out"
    assert main(["generate", "--slo", str(a), "--slo", str(b), "--out", str(out)]) == 0
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert "alerts/checkout-cache-slo-alerts.rules.yml" in names
    assert "alerts/search-cache-slo-alerts.rules.yml" in names
    assert not [n for n in names if not n.split("/")[-1].startswith(("checkout-", "search-"))]
    # rule tests load their own service's rule files
    test = yaml.safe_load((out / "alerts/tests/search-adr.test.yml").read_text())
    assert all(f.startswith("../search-") for f in test["rule_files"])
    # every rule carries its service
    for service in ("checkout", "search"):
        rules = yaml.safe_load((out / f"alerts/{service}-{c.FILE_SLO_ALERTS}").read_text())
        for group in rules["groups"]:
            for rule in group["rules"]:
                assert rule["labels"]["service"] == service
    # dashboards and Kubernetes objects do not collide
    uids = {json.loads(p.read_text())["uid"] for p in (out / "dashboards").glob("*.json")}
    assert len(uids) == len(list((out / "dashboards").glob("*.json")))
    k8s = {
        yaml.safe_load(p.read_text())["metadata"]["name"]
        for p in (out / "deploy/kubernetes").glob("*prometheusrule.yaml")
    }
    assert k8s == {"cache-slo-exporter-checkout", "cache-slo-exporter-search"}


def test_two_slo_files_for_one_service_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = slo_file(tmp_path, "a", "checkout"), slo_file(tmp_path, "b", "checkout")
    assert main(["generate", "--slo", str(a), "--slo", str(b), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "service.name" in err and "checkout" in err and err.count("\n") == 1
    assert not (tmp_path / "alerts").exists()


def test_job_flags_need_a_single_slo_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = slo_file(tmp_path, "a", "checkout"), slo_file(tmp_path, "b", "search")
    args = ["generate", "--slo", str(a), "--slo", str(b), "--app-job", "web"]
    assert main([*args, "--out", str(tmp_path)]) == 2
    assert "--app-job" in capsys.readouterr().err


def test_runbook_base_url_comes_from_the_slo_file_and_the_placeholder_warns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["generate", "--out", str(tmp_path / "default")]) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and DEFAULT_RUNBOOK_BASE_URL in err
    own = tmp_path / "own.yaml"
    own.write_text(
        BASE.read_text().replace(
            "  group_by: []", "  group_by: []\n  runbook_base_url: https://wiki.example.com/rb/"
        )
    )
    assert main(["generate", "--slo", str(own), "--out", str(tmp_path / "own")]) == 0
    assert "warning:" not in capsys.readouterr().err
    alerts = (tmp_path / "own" / "alerts" / c.FILE_SLO_ALERTS).read_text()
    assert "https://wiki.example.com/rb/CacheHitRateBudgetBurn.md" in alerts
    assert DEFAULT_RUNBOOK_BASE_URL not in alerts
    flag = "https://flag.example.com/"
    args = ["generate", "--slo", str(own), "--runbook-base-url", flag]
    assert main([*args, "--out", str(tmp_path / "flag")]) == 0
    assert f"{flag}LowCacheHitRate.md" in (tmp_path / "flag/alerts" / c.FILE_SLO_ALERTS).read_text()


def test_notes_are_one_summary_line_unless_verbose(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["generate", "--runbook-base-url", "https://x.example/", "--out", str(tmp_path)]
    assert main(base) == 0
    quiet = capsys.readouterr().err.splitlines()
    assert len(quiet) == 1 and "--verbose" in quiet[0]
    assert main([*base, "--verbose"]) == 0
    verbose = capsys.readouterr().err.splitlines()
    assert len(verbose) > 1 and all(line.startswith("note: ") for line in verbose)


def test_version_and_generate_help_say_what_they_should(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith("cache-slo-exporter ")
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    wanted = ("alerts/*.rules.yml", "alerts/tests/", "dashboards/", "deploy/kubernetes/", "--out")
    for what in wanted:
        assert what in text


@pytest.mark.parametrize(
    ("service", "field"),
    [
        ("{name: Checkout API}", "service.name"),
        ("{group_by: [instance]}", "service.group_by[0]"),
        ("{group_by: [cluster, cluster]}", "service.group_by[1]"),
        ("{group_by: [a, b, c, d, e]}", "service.group_by"),
        ("{app_selector: {type: x}}", "service.app_selector"),
        ("{app_selector: {job: ''}}", "service.app_selector.job"),
        ("{app_selector: []}", "service.app_selector"),
        ("{runbook_base_url: 'ftp://x'}", "service.runbook_base_url"),
        ("{runbook_base_url: 'https://x/{{'}", "service.runbook_base_url"),
        ("{name: check_out}", "service.name"),
        ("{name: checkout-}", "service.name"),
        ("{app_selector: {__meta_x: y}}", "service.app_selector"),
        ("{bogus: 1}", "service.bogus"),
    ],
)
def test_a_bad_service_section_names_its_field(service: str, field: str) -> None:
    text = BASE.read_text().split("service:\n")[0] + f"service: {service}\n"
    text += BASE.read_text().split("group_by: []")[1].split("\n", 1)[1]
    with pytest.raises(SLOError) as err:
        parse_slo(parse_yaml(text, "bad.yaml"), "bad.yaml")
    assert f"bad.yaml: {field}: expected" in str(err.value)
    assert "\n" not in str(err.value)


def test_the_shipped_file_spells_out_the_defaults() -> None:
    slo = load_slo()
    assert slo.service.name == "cache-app"
    assert slo.service.app_selector == 'job="cache-app"'
    assert slo.service.exporter_selector == 'job="cache-slo-exporter"'
    assert slo.service.group_by == ()


def test_selector_values_with_quotes_and_backslashes_pass_their_own_promtool_tests(
    tmp_path: Path,
) -> None:
    from tests.support.prometheus import promtool

    text = BASE.read_text().replace(
        "app_selector: {job: cache-app}", "app_selector: {job: 'we\"ird\\\\job'}"
    )
    assert "we\"ird" in text
    path = tmp_path / "odd.yaml"
    path.write_text(text)
    out = tmp_path / "out"
    assert main(["generate", "--slo", str(path), "--out", str(out)]) == 0
    result = promtool("test", "rules", "adr.test.yml", cwd=out / "alerts" / "tests")
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_runbook_url_with_braces_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["generate", "--runbook-base-url", "https://x/{{ $labels.job }}/"]
    assert main([*args, "--out", str(tmp_path)]) == 2
    assert "braces" in capsys.readouterr().err
    assert not (tmp_path / "alerts").exists()
