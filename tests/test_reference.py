"""The generated references (docs/metrics.md, docs/configuration.md) match the code."""

from __future__ import annotations

from pathlib import Path

from exporter import metrics
from exporter.cli import main
from exporter.reference import DOCS, all_metric_specs, render_configuration, render_metrics
from exporter.slo import SLO_FIELDS

ROOT = Path(__file__).resolve().parent.parent


def test_committed_references_are_what_the_code_renders() -> None:
    for name, render in DOCS.items():
        committed = (ROOT / "docs" / name).read_text("utf-8")
        assert committed == render(), f"docs/{name} is stale: run `cache-slo-exporter docs`"


def test_metric_reference_lists_every_contract_metric_with_its_labels() -> None:
    text = render_metrics()
    names = [spec.name for spec in all_metric_specs()]
    assert len(names) == len(set(names))
    for spec in (*metrics.CLIENT_METRICS, *metrics.EXPORTER_CACHE_METRICS, metrics.REDIS_UP):
        assert f"| `{spec.name}` | {spec.kind} | {', '.join(spec.labels)} |" in text


def test_configuration_reference_lists_every_flag_and_slo_field() -> None:
    text = render_configuration()
    from exporter.cli import COMMANDS, build_parser
    from exporter.reference import _subparsers

    subparsers = _subparsers(build_parser())
    assert set(subparsers) == set(COMMANDS)
    for command, sub in subparsers.items():
        section = text.split(f"## `cache-slo-exporter {command}`", 1)[1].split("\n## ", 1)[0]
        for action in sub._actions:
            for option in action.option_strings:
                assert option in section or option in ("-h", "--help"), (command, option)
    for field in SLO_FIELDS:
        assert f"| `{field.path}` |" in text


def test_docs_check_mode_reports_stale_files(tmp_path: Path) -> None:
    assert main(["docs", "--out", str(tmp_path)]) == 0
    assert main(["docs", "--out", str(tmp_path), "--check"]) == 0
    (tmp_path / "metrics.md").write_text("stale\n")
    assert main(["docs", "--out", str(tmp_path), "--check"]) == 1
