"""``cache-slo-exporter generate``: rules, rule tests and dashboards from the SLO file.

Writes ``alerts/*.rules.yml``, ``alerts/tests/*.yml`` (promtool unit tests, for
the production profile) and ``dashboards/*.json`` under the repository root (the
nearest folder upwards holding ``pyproject.toml``, else the current directory)
or under ``--out DIR``.  The same input gives byte-identical files; ``--check``
compares instead of writing and fails when a committed file is stale.

Writing is all or nothing: every changed file is first written into a staging
folder beside the output (``DIR/.cache-slo-generate-*``), then each is moved
into place with an atomic rename; if any step fails, the files already moved are
put back as they were, so a failed run leaves the previous output untouched.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

from exporter.kubernetes import KUBERNETES_DIR, render_manifests
from exporter.kubernetes import NAME as K8S_NAME
from exporter.paths import PATH_CLASSES_HELP, check_layer_types
from exporter.rules.builders import generate_rules
from exporter.rules.config import DEFAULT_RUNBOOK_BASE_URL, RuleConfig
from exporter.rules.profiles import PRODUCTION, PROFILES, Profile
from exporter.rules.render import render_rule_file
from exporter.slo import DEFAULT_SLO_NAME, RUNBOOK_URL_RE, SLO, by_service, load_slo

ALERTS_DIR = "alerts"
RULE_TESTS_DIR = "alerts/tests"
DASHBOARDS_DIR = "dashboards"
_JOB_RE = re.compile(r"^[A-Za-z0-9_.:/-]+$")
#: the staging folder's name prefix, inside the output folder
STAGING_PREFIX = ".cache-slo-generate-"


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
    one_of_many: bool = False,
) -> tuple[dict[str, str], list[str]]:
    """Every generated file as ``{relative path: text}``, plus notes for the operator
    (``one_of_many``: this SLO is one of several generated together)."""
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
    from exporter.dashboards import render_dashboards

    dashboards = render_dashboards(slo, source, config)
    for name, text in dashboards.items():
        files[f"{DASHBOARDS_DIR}/{name}"] = text
    if profile is PRODUCTION:  # what a cluster runs: the production rules only
        rules = {f.name: files[f"{ALERTS_DIR}/{f.name}"] for f in generated.files}
        k8s_name = f"{K8S_NAME}-{slo.service.name}" if one_of_many else K8S_NAME
        manifests = render_manifests(rules, dashboards, source=source, name=k8s_name)
        for name, text in manifests.items():
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
    return value


def with_jobs(slo: SLO, app_job: str | None, exporter_job: str | None) -> SLO:
    """The SLO with its service's ``job`` matchers replaced by the flags given."""

    def swap(matchers: tuple[tuple[str, str], ...], job: str | None) -> tuple[tuple[str, str], ...]:
        if job is None:
            return matchers
        return (("job", job), *((k, v) for k, v in matchers if k != "job"))

    service = dataclasses.replace(
        slo.service,
        app=swap(slo.service.app, app_job),
        exporter=swap(slo.service.exporter, exporter_job),
    )
    return dataclasses.replace(slo, service=service)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--slo",
        action="append",
        help="SLO file (default: the shipped ADR-004 defaults); repeat it for several "
        "services: each one's files are then prefixed with its service name",
    )
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
        help="prefix of every alert's runbook_url (<base><AlertName>.md); default: the SLO "
        "file's service.runbook_base_url, else a placeholder (with a warning)",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="list every note (tiers capped or left out)"
    )
    parser.add_argument("--path-classes", metavar="FILE", help=PATH_CLASSES_HELP)
    parser.add_argument(
        "--exporter-job",
        help="exporter's job (replaces the SLO file's service.exporter_selector job; "
        "default cache-slo-exporter)",
    )
    parser.add_argument(
        "--app-job",
        help="instrumented app's job (replaces the SLO file's service.app_selector job; "
        "default cache-app)",
    )


def run(args: argparse.Namespace) -> int:
    try:
        app_job = None if args.app_job is None else _job("--app-job", args.app_job)
        exporter_job = (
            None if args.exporter_job is None else _job("--exporter-job", args.exporter_job)
        )
        if args.runbook_base_url is not None and not RUNBOOK_URL_RE.match(args.runbook_base_url):
            raise argparse.ArgumentTypeError(
                "--runbook-base-url: expected an http(s) URL without spaces or braces such as "
                f"https://wiki.example.com/runbooks/, got {args.runbook_base_url[:80]!r}"
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
    paths: list[str | None] = list(args.slo or [None])
    if len(paths) > 1 and (app_job or exporter_job):
        print(
            "error: --app-job/--exporter-job: expected one SLO file (with several, set "
            "service.app_selector / service.exporter_selector in each)",
            file=sys.stderr,
        )
        return 2
    slos = [with_jobs(load_slo(p), app_job, exporter_job) for p in paths]
    by_service(slos)  # one service in two files: refused (SLOError) before anything is written
    files: dict[str, str] = {}
    notes: list[str] = []
    warnings: list[str] = []
    for slo in slos:  # refused before anything is written; warnings print with the rest
        lines, refused = check_layer_types(slo.source, slo.layers, args.path_classes)
        if refused:
            for line in lines:
                print(line, file=sys.stderr)
            return 2
        warnings += lines
    for path, slo in zip(paths, slos, strict=True):
        runbooks = args.runbook_base_url or slo.service.runbook_base_url
        if runbooks is None:
            warnings.append(
                f"warning: {slo.source}: runbook links point at the placeholder "
                f"{DEFAULT_RUNBOOK_BASE_URL}: set service.runbook_base_url in the SLO file "
                "or pass --runbook-base-url"
            )
        config = RuleConfig(runbook_base_url=runbooks or DEFAULT_RUNBOOK_BASE_URL)
        try:
            own, own_notes = render_all(
                slo,
                source=source_name(path),
                profile=PROFILES[args.profile],
                config=config,
                one_of_many=len(slos) > 1,
            )
        except ValueError as exc:  # nothing written yet: the generator refused this SLO
            print(f"error: {slo.source}: rules cannot be generated for it ({exc})", file=sys.stderr)
            return 2
        if len(slos) > 1:
            own = per_service(own, slo.service.name)
            own_notes = [f"{slo.service.name}: {n}" for n in own_notes]
        files.update(own)
        notes += own_notes
    for warning in warnings:
        print(warning, file=sys.stderr)
    if args.verbose:
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
    elif notes:
        print(
            f"note: {len(notes)} burn-rate tiers adapted to budgets they could never reach "
            "(capped or left out; each is commented in the rules; --verbose lists them)",
            file=sys.stderr,
        )
    if args.profile != PRODUCTION.name:
        print(
            f"note: profile {args.profile}: promtool tests are written for production only",
            file=sys.stderr,
        )
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
    try:
        write_all(out, files)
    except OSError as exc:
        where = exc.filename or out
        print(
            f"error: {where}: could not write the generated files ({exc.strerror or exc}); "
            f"nothing under {out} was changed",
            file=sys.stderr,
        )
        return 2
    print(f"wrote {len(files)} files under {out} (profile {args.profile})")
    return 0


def per_service(files: dict[str, str], service: str) -> dict[str, str]:
    """One service's files when several are generated together: each file name gets the
    service as prefix (``alerts/checkout-cache-slo-alerts.rules.yml``), each dashboard
    the service in its title and uid, each Kubernetes object the service in its name, so
    a whole platform's output shares one folder, one Grafana and one namespace."""
    out = {}
    for rel, text in files.items():
        folder, _, name = rel.rpartition("/")
        if rel.startswith(f"{RULE_TESTS_DIR}/"):
            text = text.replace("- ../", f"- ../{service}-")
        elif rel.startswith(f"{DASHBOARDS_DIR}/"):
            text = retitled(text, service)
        out[f"{folder}/{service}-{name}"] = text
    return out


def retitled(dashboard: str, service: str) -> str:
    """A dashboard's JSON with the service in its title and a uid of its own."""
    from exporter.dashboards.common import uid_for

    data = json.loads(dashboard)
    data["title"] = f"{data['title']} ({service})"
    data["uid"] = uid_for(data["title"])
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_all(out: Path, files: dict[str, str]) -> list[str]:
    """Write ``files`` (``{relative path: text}``) under ``out``, all or nothing.

    Only files whose text changed are written.  They are staged in a temporary
    folder inside ``out`` (so on the same file system), then renamed into place
    one by one; the previous version of each is kept (hard-linked) until every
    rename succeeded, and on any failure the renamed ones are put back and
    folders created here are removed.  Returns the paths written.
    """
    changed = {rel: text for rel, text in files.items() if _read(out / rel) != text}
    if not changed:
        return []
    created: list[Path] = []
    staging: Path | None = None
    done = False
    try:
        _make_dirs(out, created)
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out))
        for rel, text in changed.items():
            _write_file(staging / "new" / rel, text)
        _move_into_place(out, staging, list(changed), created)
        done = True
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        if not done:
            _remove_dirs(created)
    return list(changed)


def _write_file(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as stream:
        stream.write(text)
        stream.flush()
        os.fsync(stream.fileno())


def _make_dirs(folder: Path, created: list[Path]) -> list[Path]:
    """``folder`` and its missing parents; the ones made are appended to ``created``."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    for path in reversed(missing):
        path.mkdir()
        created.append(path)
    return created


def _remove_dirs(created: list[Path]) -> None:
    for path in reversed(created):
        with contextlib.suppress(OSError):
            path.rmdir()


def _move_into_place(out: Path, staging: Path, paths: list[str], created: list[Path]) -> None:
    moved: list[tuple[Path, Path | None]] = []  # (target, its previous version)
    try:
        for rel in paths:
            target = out / rel
            _make_dirs(target.parent, created)
            backup = None
            if target.exists():
                backup = staging / "old" / rel
                backup.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(target, backup)
                except OSError:
                    shutil.copy2(target, backup)
            moved.append((target, backup))
            _install(staging / "new" / rel, target)
    except BaseException:
        for target, backup in reversed(moved):
            if backup is not None:
                os.replace(backup, target)
            else:
                target.unlink(missing_ok=True)
        raise


def _install(staged: Path, target: Path) -> None:
    """One file into place, atomically (readers see the old or the new text)."""
    os.replace(staged, target)


def _read(path: Path) -> str | None:
    try:
        return path.read_text("utf-8")
    except FileNotFoundError:
        return None
