"""``cache-slo-exporter generate``: rules, rule tests and dashboards from the SLO file.

Writes ``alerts/*.rules.yml``, ``alerts/tests/*.yml`` (promtool unit tests, for
the production profile) and ``dashboards/*.json`` under the repository root (the
nearest folder upwards holding ``pyproject.toml``, else the current directory)
or under ``--out DIR``.  The same input gives byte-identical files; ``--check``
compares instead of writing and fails when a committed file is stale.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from exporter.kubernetes import KUBERNETES_DIR, render_manifests
from exporter.rules.builders import generate_rules
from exporter.rules.config import DEFAULT_RUNBOOK_BASE_URL, RuleConfig
from exporter.rules.profiles import PRODUCTION, PROFILES, Profile
from exporter.rules.render import render_rule_file
from exporter.slo import DEFAULT_SLO_NAME, SLO, load_slo

ALERTS_DIR = "alerts"
RULE_TESTS_DIR = "alerts/tests"
DASHBOARDS_DIR = "dashboards"
_JOB_RE = re.compile(r"^[A-Za-z0-9_.:/-]+$")


def source_name(slo_path: str | None) -> str:
    """How the header names the SLO file: never an absolute path (output must not
    depend on where the checkout lives)."""
    return f"the shipped default {DEFAULT_SLO_NAME}" if slo_path is None else Path(slo_path).name


def render_all(
    slo: SLO,
    *,
    source: str,
    profile: Profile = PRODUCTION,
    config: RuleConfig | None = None,
) -> tuple[dict[str, str], list[str]]:
    """Every generated file as ``{relative path: text}``, plus notes for the operator."""
    config = config or RuleConfig()
    generated = generate_rules(slo, config, profile)
    files = {
        f"{ALERTS_DIR}/{f.name}": render_rule_file(f, source, profile.name) for f in generated.files
    }
    notes = list(generated.notes)
    if profile is PRODUCTION:
        from exporter.rules.promtool_tests import render_rule_tests

        for name, text in render_rule_tests(slo, config, generated, source).items():
            files[f"{RULE_TESTS_DIR}/{name}"] = text
    else:
        notes.append(f"profile {profile.name}: promtool tests are written for production only")
    from exporter.dashboards import render_dashboards

    dashboards = render_dashboards(slo, source)
    for name, text in dashboards.items():
        files[f"{DASHBOARDS_DIR}/{name}"] = text
    if profile is PRODUCTION:  # what a cluster runs: the production rules only
        rules = {f.name: files[f"{ALERTS_DIR}/{f.name}"] for f in generated.files}
        for name, text in render_manifests(rules, dashboards, source=source).items():
            files[f"{KUBERNETES_DIR}/{name}"] = text
    return files, notes


def repo_root(start: Path | None = None) -> Path:
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file():
            return folder
    return here


def _job(flag: str, value: str) -> str:
    if not _JOB_RE.match(value):
        raise argparse.ArgumentTypeError(
            f"{flag}: expected a Prometheus job name (letters, digits, _ . : / -), got {value!r}"
        )
    return f'job="{value}"'


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--slo", help="SLO file (default: the shipped ADR-004 defaults)")
    parser.add_argument(
        "--out", type=Path, help="write into DIR/alerts and DIR/dashboards (default: repo root)"
    )
    parser.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default=PRODUCTION.name,
        help="fast: every window and for: divided by 60, same names (for live tests)",
    )
    parser.add_argument(
        "--check", action="store_true", help="compare with the files on disk; exit 1 if stale"
    )
    parser.add_argument(
        "--runbook-base-url",
        default=DEFAULT_RUNBOOK_BASE_URL,
        help="prefix of every alert's runbook_url (<base><AlertName>.md)",
    )
    parser.add_argument("--exporter-job", default="cache-slo-exporter", help="exporter's job")
    parser.add_argument("--app-job", default="cache-app", help="instrumented app's job")


def run(args: argparse.Namespace) -> int:
    try:
        config = RuleConfig(
            exporter_selector=_job("--exporter-job", args.exporter_job),
            app_selector=_job("--app-job", args.app_job),
            runbook_base_url=args.runbook_base_url,
        )
    except argparse.ArgumentTypeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.profile != PRODUCTION.name and args.out is None:
        print(
            f"error: --profile {args.profile}: expected --out DIR as well (the repository's "
            "alerts/ and dashboards/ hold the production output)",
            file=sys.stderr,
        )
        return 2
    slo = load_slo(args.slo)
    files, notes = render_all(
        slo, source=source_name(args.slo), profile=PROFILES[args.profile], config=config
    )
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    out: Path = args.out if args.out is not None else repo_root()
    if args.check:
        stale = [p for p, text in files.items() if _read(out / p) != text]
        for path in stale:
            print(f"stale: {out / path} differs from what the generator writes", file=sys.stderr)
        if stale:
            print("run `cache-slo-exporter generate` and commit the result", file=sys.stderr)
            return 1
        print(f"{len(files)} generated files up to date in {out}")
        return 0
    for path, text in files.items():
        target = out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if _read(target) != text:
            target.write_text(text, "utf-8")
    print(f"wrote {len(files)} files under {out} (profile {args.profile})")
    return 0


def _read(path: Path) -> str | None:
    try:
        return path.read_text("utf-8")
    except FileNotFoundError:
        return None
