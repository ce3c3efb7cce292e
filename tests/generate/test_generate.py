"""The generate command: deterministic, committed output, windows, caps and runbooks."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from exporter import metrics as m
from exporter.cli import main
from exporter.generate import render_all, source_name
from exporter.rules import conventions as c
from exporter.rules.builders import generate_rules, recording_windows
from exporter.rules.model import number
from exporter.rules.profiles import FAST
from exporter.rules.windows import BURN_TIERS, CAP_ERROR_RATIO, tiers_for_budget
from exporter.slo import load_slo, parse_duration
from tests.generate.conftest import REPO

SLO_TEMPLATE = """
version: 1
window: {window}
hit_rate: {{objective: {overall}, min_read_rate: 0.5}}
latency: {{operation: get, threshold: 10ms, objective: 0.999}}
key_types:
  - {{name: session, ttl: 24h, tenant_scoped: false, hit_rate_objective: 0.99}}
  - {{name: report, ttl: 1h, tenant_scoped: true, hit_rate_objective: 0.3}}
"""


def slo_file(tmp_path: Path, window: str = "30d", overall: str = "0.8") -> Path:
    path = tmp_path / "slo.yaml"
    path.write_text(SLO_TEMPLATE.format(window=window, overall=overall))
    return path


def rules_of(files: dict[str, str]) -> list[dict[str, object]]:
    rules = []
    for name, text in files.items():
        if name.endswith(".rules.yml"):
            for group in yaml.safe_load(text)["groups"]:
                rules += group["rules"]
    return rules


def test_committed_files_are_what_the_generator_writes(production: dict[str, str]) -> None:
    stale = [p for p, text in production.items() if (REPO / p).read_text("utf-8") != text]
    assert not stale, f"regenerate with `make generate` and commit: {stale}"
    extra = {
        str(p.relative_to(REPO))
        for pattern in ("alerts/*.rules.yml", "alerts/tests/*.yml", "dashboards/*.json")
        for p in REPO.glob(pattern)
    } - set(production)
    assert not extra, f"committed files the generator no longer writes: {sorted(extra)}"


def test_same_input_gives_byte_identical_output(production: dict[str, str]) -> None:
    again, _ = render_all(load_slo(), source=source_name(None))
    assert again == production


def test_every_generated_file_says_it_is_generated(production: dict[str, str]) -> None:
    for path, text in production.items():
        marker = "do not edit" if path.endswith(".json") else "DO NOT EDIT"
        assert marker in text, path


def test_numbers_are_written_exactly(production: dict[str, str]) -> None:
    """No float noise such as Sloth's 0.0009999999999999432 for 1 - 0.999."""
    noise = re.compile(r"\d\.\d*(9999|0000)\d")
    for path, text in production.items():
        if path.endswith(".rules.yml"):
            assert not noise.search(text), (path, noise.search(text))
    assert number(1 - Decimal("0.999")) == "0.001"
    assert number(0.95) == "0.95"


def test_ratio_thresholds_in_the_alerts_come_from_the_slo(production: dict[str, str]) -> None:
    exprs = [str(r["expr"]) for r in rules_of(production) if r.get("alert") == c.ALERT_LOW_HIT_RATE]
    slo = load_slo()
    for type_, objective in slo.objectives.items():
        assert any(f'type="{type_}"}} < {number(objective)}' in e for e in exprs), type_
    latency = next(
        str(r["expr"]) for r in rules_of(production) if r.get("alert") == c.ALERT_HIGH_LATENCY
    )
    assert latency.startswith("histogram_quantile(0.99, ")
    assert "> 0.01\n" in latency
    recordings = production["alerts/" + c.FILE_RECORDINGS]
    assert 'le="0.01"' in recordings
    assert f"{m.CACHE_HITS.name}{{" in recordings and 'layer="redis"' in recordings


def test_no_burn_tier_asks_for_an_error_ratio_of_one_or_more(production: dict[str, str]) -> None:
    burn = re.compile(r"\(1 - [^)]*\) / ([0-9.]+) > ([0-9.]+)")
    found = 0
    for rule in rules_of(production):
        for budget, factor in burn.findall(str(rule.get("expr", ""))):
            found += 1
            assert Decimal(budget) * Decimal(factor) < 1, rule["alert"]
    assert found


def test_tiers_that_cannot_fire_are_capped_or_left_out_and_said_so() -> None:
    tiers, notes = tiers_for_budget(BURN_TIERS, Decimal("0.2"))
    factors = [(t.severity, t.factor, t.capped_from) for t in tiers]
    assert factors == [
        ("page", Decimal("4.5"), Decimal("14.4")),
        ("ticket", Decimal("3"), None),
        ("ticket", Decimal("1"), None),
    ]
    assert len(notes) == 2
    assert "14.4x (1h/5m) capped to 4.5x" in notes[0]
    assert "6x (6h/30m) left out" in notes[1]
    for tier in tiers:
        assert tier.factor * Decimal("0.2") <= CAP_ERROR_RATIO
    untouched, none = tiers_for_budget(BURN_TIERS, Decimal("0.001"))
    assert untouched == BURN_TIERS and none == []


def test_generate_reports_capped_tiers_on_stderr_and_in_the_yaml(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["generate", "--slo", str(slo_file(tmp_path)), "--out", str(tmp_path)]
    assert main([*args, "--verbose"]) == 0
    err = capsys.readouterr().err
    assert "hit rate of report reads (objective 0.3)" in err and "capped to" in err
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "burn-rate tiers adapted" in err and "hit rate of report reads" not in err
    text = (tmp_path / "alerts" / c.FILE_SLO_ALERTS).read_text()
    assert "# capped from 14.4x" in text
    assert "# hit rate of report reads (objective 0.3): page tier 14.4x" in text


def test_burn_windows_scale_with_the_slo_window(tmp_path: Path) -> None:
    slo = load_slo(slo_file(tmp_path, window="7d"))
    windows = recording_windows(slo)
    # 30d table scaled by 7/30: 1h -> 14m, 5m -> 1m10s; the ADR's 5m stays
    assert timedelta(minutes=14) in windows and timedelta(minutes=1, seconds=10) in windows
    assert timedelta(minutes=5) in windows and timedelta(days=7) in windows
    alerts = [r for r in generate_rules(slo).alerts() if r.alert == c.ALERT_LATENCY_BURN]
    assert {(r.label("long_window"), r.label("short_window")) for r in alerts} == {
        ("14m", "1m10s"),
        ("1h24m", "7m"),
        ("5h36m", "28m"),
        ("16h48m", "1h24m"),
    }


def test_fast_profile_keeps_names_and_labels_and_shrinks_ranges(fast_dir: Path) -> None:
    slo = load_slo()
    prod = generate_rules(slo)
    fast = generate_rules(slo, profile=FAST)

    def identity(gen: object) -> list[tuple[str | None, str | None, tuple[tuple[str, str], ...]]]:
        return [
            (r.alert, r.record, r.labels)
            for f in gen.files  # type: ignore[attr-defined]
            for g in f.groups
            for r in g.rules
        ]

    assert identity(prod) == identity(fast)
    page = next(r for r in fast.alerts() if r.alert == c.ALERT_LATENCY_BURN)
    assert page.for_ is not None and page.for_ <= timedelta(seconds=5)
    text = (fast_dir / "alerts" / c.FILE_RECORDINGS).read_text()
    ranges = {parse_duration(x) for x in re.findall(r"\[(\w+)\]", text)}
    assert max(ranges) == timedelta(hours=12)  # 30d / 60
    assert min(ranges) == FAST.min_range
    assert "profile: fast" in text


def test_check_flag_detects_stale_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "--out", str(tmp_path)]) == 0
    assert main(["generate", "--out", str(tmp_path), "--check"]) == 0
    target = tmp_path / "alerts" / c.FILE_OPERATIONAL
    target.write_text(target.read_text() + "# hand edit\n")
    capsys.readouterr()
    assert main(["generate", "--out", str(tmp_path), "--check"]) == 1
    assert c.FILE_OPERATIONAL in capsys.readouterr().err


def test_job_selectors_and_runbook_base_come_from_flags(tmp_path: Path) -> None:
    args = ["generate", "--out", str(tmp_path), "--exporter-job", "redis-exp", "--app-job", "web"]
    assert main([*args, "--runbook-base-url", "https://runbooks.example/cache"]) == 0
    text = (tmp_path / "alerts" / c.FILE_OPERATIONAL).read_text()
    assert 'redis_up{job="redis-exp"}' in text
    assert 'cache_errors_total{job="web"' in text
    assert "'https://runbooks.example/cache/RedisDown.md'" in text


def test_bad_job_flag_is_refused_naming_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["generate", "--out", str(tmp_path), "--app-job", 'x"}']) == 2
    err = capsys.readouterr().err
    assert "--app-job" in err and "job name" in err
    assert not (tmp_path / "alerts").exists()


def test_fast_profile_is_never_written_over_the_committed_output(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["generate", "--profile", "fast"]) == 2
    assert "--profile fast: expected --out DIR" in capsys.readouterr().err


def test_bad_slo_file_is_refused_with_file_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(slo_file(tmp_path).read_text().replace("objective: 0.8", "objective: 8"))
    assert main(["generate", "--slo", str(bad), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "hit_rate.objective" in err


def test_every_alert_has_severity_summary_description_and_an_existing_runbook(
    production: dict[str, str],
) -> None:
    for rule in rules_of(production):
        if "alert" not in rule:
            continue
        labels, notes = dict(rule["labels"]), dict(rule["annotations"])  # type: ignore[call-overload]
        assert labels["severity"] in (c.SEVERITY_PAGE, c.SEVERITY_TICKET)
        assert notes["summary"] and notes["description"]
        runbook = notes["runbook_url"]
        assert runbook.endswith(f"/docs/runbooks/{rule['alert']}.md")
        page = REPO / "docs" / "runbooks" / f"{rule['alert']}.md"
        text = page.read_text("utf-8")
        for section in ("## Meaning", "## Impact", "## Diagnosis", "## Mitigation"):
            assert section in text, (page.name, section)


def test_runbook_index_lists_every_alert() -> None:
    index = (REPO / "docs" / "runbooks" / "README.md").read_text("utf-8")
    for alert in c.ALL_ALERTS:
        assert f"[{alert}.md]({alert}.md)" in index, alert


def test_measured_value_is_in_every_description(production: dict[str, str]) -> None:
    for rule in rules_of(production):
        if "alert" in rule:
            assert "$value" in dict(rule["annotations"])["description"], rule["alert"]  # type: ignore[call-overload]


def metric_names(expr: str) -> set[str]:
    """Names of every vector selector in a PromQL expression (offline parser)."""
    import promql_parser

    names: list[str] = []

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            names.append(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return set(names)


def test_rules_read_only_contract_metrics_and_recorded_series(production: dict[str, str]) -> None:
    from tests.generate.test_dashboards import all_specs

    specs = all_specs()  # also the families metrics.py defines inline in its tables
    contract = {s.name for s in specs}
    contract |= {
        f"{s.name}_{x}" for s in specs if s.kind == "histogram" for x in ("bucket", "count")
    }
    recorded = {str(r["record"]) for r in rules_of(production) if "record" in r}
    for rule in rules_of(production):
        unknown = metric_names(str(rule["expr"])) - contract - recorded - {"up"}
        assert not unknown, (rule.get("alert") or rule.get("record"), unknown)


# --- all or nothing (#10 item 8) ---------------------------------------------------


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (hidden ones too: a left-over staging folder shows)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def previous_output(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    """A folder holding a first generation's output, and a hand-made file beside it."""
    out = tmp_path / "out"
    assert main(["generate", "--out", str(out)]) == 0
    (out / "alerts" / "README.md").write_text("kept\n")
    return out, snapshot(out)


def test_a_failure_while_moving_files_into_place_leaves_the_previous_output(
    tmp_path: Path,
    previous_output: tuple[Path, dict[str, bytes]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Every changed file is already in place but the last when the last rename fails:
    the ones moved are put back, byte for byte, and the staging folder is gone."""
    import exporter.generate as generate

    out, before = previous_output
    moved: list[Path] = []
    real_install = generate._install

    def install(staged: Path, target: Path) -> None:
        if len(moved) == 5:
            raise OSError(28, "No space left on device", str(target))
        moved.append(target)
        real_install(staged, target)

    monkeypatch.setattr(generate, "_install", install)
    other = slo_file(tmp_path, window="7d")  # every rule and test file changes
    assert main(["generate", "--slo", str(other), "--out", str(out)]) == 2
    assert len(moved) == 5  # five files had been replaced before the failure
    assert snapshot(out) == before
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "No space left on device" in err[-1]
    assert f"nothing under {out} was changed" in err[-1]
    monkeypatch.undo()  # and the same run without the fault writes everything
    assert main(["generate", "--slo", str(other), "--out", str(out)]) == 0
    assert snapshot(out) != before and not list(out.glob(".cache-slo-generate-*"))


def test_a_failure_while_staging_leaves_the_previous_output(
    tmp_path: Path,
    previous_output: tuple[Path, dict[str, bytes]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import exporter.generate as generate

    out, before = previous_output
    written: list[Path] = []
    real_write = generate._write_file

    def write_file(path: Path, text: str) -> None:
        if len(written) == 3:
            raise OSError(122, "Disk quota exceeded", str(path))
        written.append(path)
        real_write(path, text)

    monkeypatch.setattr(generate, "_write_file", write_file)
    assert main(["generate", "--slo", str(slo_file(tmp_path, window="7d")), "--out", str(out)]) == 2
    assert written and all(out in p.parents for p in written)  # staged inside --out
    assert snapshot(out) == before


def test_a_failed_first_generation_leaves_no_folder_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import exporter.generate as generate

    def install(staged: Path, target: Path) -> None:
        raise OSError(13, "Permission denied", str(target))

    monkeypatch.setattr(generate, "_install", install)
    out = tmp_path / "new" / "out"
    assert main(["generate", "--out", str(out)]) == 2
    assert not (tmp_path / "new").exists()


def test_a_refused_slo_file_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(slo_file(tmp_path).read_text().replace("window: 30d", "window: 1ms"))
    out = tmp_path / "out"
    assert main(["generate", "--slo", str(bad), "--out", str(out)]) == 2
    assert not out.exists()


def test_an_unchanged_file_is_not_rewritten(
    previous_output: tuple[Path, dict[str, bytes]],
) -> None:
    out, _ = previous_output
    rules = out / "alerts" / c.FILE_OPERATIONAL
    inode = rules.stat().st_ino
    assert main(["generate", "--out", str(out)]) == 0
    assert rules.stat().st_ino == inode


def test_a_generator_refusal_is_one_line_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Should any SLO file the loader accepts still trip the generator (a scenario it
    cannot build), the run ends with one line naming the file, before writing."""
    import exporter.generate as generate

    def render_all(*args: object, **kwargs: object) -> None:
        raise ValueError("scenario for CacheHitRateBudgetBurn page 2m/10s is ambiguous")

    monkeypatch.setattr(generate, "render_all", render_all)
    slo = slo_file(tmp_path)
    out = tmp_path / "out"
    assert main(["generate", "--slo", str(slo), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"error: {slo}: rules cannot be generated for it (scenario for")
    assert not out.exists()


def test_no_rule_reads_a_recording_of_its_own_group(production: dict[str, str]) -> None:
    """Each group reads only raw series and other groups' recordings, so the rules run
    unchanged in rulers that evaluate a group's rules concurrently or read their own
    writes late (Thanos, Mimir): nothing depends on the order inside a group."""
    checked = 0
    for name, text in production.items():
        if not name.endswith(".rules.yml"):
            continue
        for group in yaml.safe_load(text)["groups"]:
            own = {r["record"] for r in group["rules"] if "record" in r}
            for rule in group["rules"]:
                used = set(re.findall(r"[a-z_]+:[a-z_]+:[a-z_0-9]+", str(rule["expr"])))
                assert not used & own, (group["name"], rule.get("record") or rule.get("alert"))
                checked += 1
    assert checked > 50


def test_long_windows_add_up_recorded_5m_series_not_raw_counters(
    production: dict[str, str],
) -> None:
    """Windows from 30m on never read a raw counter (their cost must not grow with pods
    or days); they sum the 5m recordings, hits over reads (weighted by traffic)."""
    groups = {
        g["name"]: g
        for name, text in production.items()
        if name.endswith(".rules.yml")
        for g in yaml.safe_load(text)["groups"]
    }
    long = groups[c.GROUP_SLI_LONG]["rules"]
    assert {r["record"] for r in long} >= {c.record_hit_ratio(parse_duration("30d"))}
    for rule in long:
        expr = str(rule["expr"])
        assert "_total" not in expr and "rate(" not in expr.replace("_over_time(", ""), expr
        assert ":rate5m{" in expr
    ratio30d = next(r for r in long if r["record"] == c.record_hit_ratio(parse_duration("30d")))
    assert str(ratio30d["expr"]).startswith(
        f"sum_over_time({c.record_hits(parse_duration('5m'))}"
    )
    raw = groups[c.GROUP_SLI]["rules"]
    longest_raw = max(
        parse_duration(w) for r in raw for w in re.findall(r"\[(\w+)\]", str(r["expr"]))
    )
    assert longest_raw == timedelta(minutes=5)  # a 30-day SLO reads only its 5m window raw
