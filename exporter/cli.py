"""The ``cache-slo-exporter`` command line.

Each subcommand lives in the module that does its work; that module provides
``configure_parser(parser)`` and ``run(args) -> int``.  This file only routes.
A command that needs an optional extra (``serve`` and ``demo`` need
``[server]``: FastAPI, uvicorn, httpx, Jinja2) takes its flags from a module that
imports none of it, loads its ``run`` only when it runs, and without the extra
says which one to install.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from exporter.slo import SLOError, format_duration, load_slo

#: what each optional extra of the package brings (import names)
EXTRAS: dict[str, tuple[str, ...]] = {"server": ("fastapi", "uvicorn", "httpx", "jinja2")}


@dataclass(frozen=True)
class Command:
    """A subcommand: where its flags and its ``run`` live, and the extra it needs."""

    help: str
    parser_module: str
    run_module: str = ""  # default: the parser module
    extra: str | None = None
    #: ``COMMAND --help``'s text when it has more to say than the one-line ``help``
    description: str | None = None


COMMANDS: dict[str, Command] = {
    "check-slo": Command("Validate an SLO file and print what it declares.", "exporter.cli"),
    "demo": Command(
        "Run Redis, an app behind nginx, the exporter and Prometheus here.",
        "exporter.demo.command",
        extra="server",
    ),
    "docs": Command(
        "Write the metric and configuration references into docs/.", "exporter.reference"
    ),
    "generate": Command(
        "Write alert rules, rule tests and dashboards from the SLO.",
        "exporter.generate",
        description=(
            "Write, from one or several SLO files, under the repository root (the nearest "
            "folder upwards holding pyproject.toml) or --out DIR: alerts/*.rules.yml "
            "(recording and alert rules), alerts/tests/*.yml (promtool unit tests), "
            "dashboards/*.json (Grafana) and deploy/kubernetes/ (PrometheusRule, dashboards "
            "ConfigMap). Only changed files are written, all or nothing; --check compares "
            "instead. With several SLO files each service's files get its name as prefix."
        ),
    ),
    "serve": Command(
        "Serve /metrics for Redis (INFO, sampling) and PostgreSQL.",
        "exporter.config",
        "exporter.server",
        extra="server",
    ),
}


class MissingExtraError(Exception):
    """A command needs an optional extra that is not installed."""


def require_extra(extra: str) -> None:
    """Raise :class:`MissingExtraError` naming the ``pip install`` that brings ``extra``."""
    missing = []
    for name in EXTRAS[extra]:
        # found, not imported: serve loads FastAPI, httpx and Jinja2 only for the status
        # page (a None entry in sys.modules is how an import is blocked)
        if sys.modules.get(name, "") is None or importlib.util.find_spec(name) is None:
            missing.append(name)
    if missing:
        raise MissingExtraError(
            f"this command needs the [{extra}] extra ({', '.join(missing)} not installed): "
            f"pip install 'cache-slo-exporter[{extra}]'"
        )


def _runner(command: Command) -> Callable[[argparse.Namespace], int]:
    """``run`` of ``command``, imported when it runs (after its extra is checked)."""

    def run_command(args: argparse.Namespace) -> int:
        if command.extra is not None:
            require_extra(command.extra)
        module = importlib.import_module(command.run_module or command.parser_module)
        return int(module.run(args))

    return run_command


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "slo",
        nargs="?",
        help="SLO file (default: the shipped exporter/data/slo.yaml, ADR-004's numbers)",
    )
    add_path_classes_flag(parser)


def add_path_classes_flag(parser: argparse.ArgumentParser) -> None:
    """``--path-classes FILE``: the CDN and browser layers' types, as ``serve`` takes them."""
    from exporter.paths import PATH_CLASSES_HELP

    parser.add_argument("--path-classes", metavar="FILE", help=PATH_CLASSES_HELP)


def run(args: argparse.Namespace) -> int:
    """``check-slo``: refuse a bad file with file, field and expectation."""
    from exporter.paths import check_layer_types

    slo = load_slo(args.slo)
    lines, refused = check_layer_types(slo.source, slo.layers, args.path_classes)
    for line in lines:
        print(line, file=sys.stderr)
    if refused:
        return 2
    print(f"{slo.source}: valid (version {slo.version}, window {format_duration(slo.window)})")
    svc = slo.service
    placement = f", grouped by {', '.join(svc.group_by)}" if svc.group_by else ""
    print(
        f"  service {svc.name}: app {{{svc.app_selector}}}, exporter "
        f"{{{svc.exporter_selector}}}{placement}"
    )
    print(f"  overall hit rate >= {slo.hit_rate_objective:g}")
    lat = slo.latency
    print(
        f"  {lat.operation} latency: {lat.objective:g} of calls within "
        f"{format_duration(lat.threshold)}"
    )
    for kt in slo.key_types:
        scope = "tenant-scoped" if kt.tenant_scoped else "global"
        objective = f", hit rate >= {kt.hit_rate_objective:g}" if kt.hit_rate_objective else ""
        print(
            f"  {kt.name}: prefix {kt.prefix!r}, ttl {format_duration(kt.ttl)}, {scope}{objective}"
        )
    if slo.api is not None:
        api = slo.api
        print(
            f"  API latency: {api.objective:g} of requests (cached: {api.cached}) within "
            f"{format_duration(api.threshold)}"
        )
    for layer, types in slo.layers.items():
        shown = ", ".join(f"{name} >= {objective:g}" for name, objective in types.items())
        print(f"  {layer} hit rate: {shown}")
    return 0


def version() -> str:
    """The installed distribution's version (``unknown`` when run from a bare checkout)."""
    try:
        return importlib.metadata.version("cache-slo-exporter")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class _HelpFormatter(argparse.HelpFormatter):
    """Show a flag's default in ``--help`` unless its help already names one."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text.lower():
            return text
        return f"{text} (default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cache-slo-exporter",
        description="Redis cache SLOs: instrumented client, exporter, rules and dashboards.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in COMMANDS.items():
        module = (
            sys.modules[__name__]
            if command.parser_module == __name__
            else importlib.import_module(command.parser_module)
        )
        child = sub.add_parser(
            name,
            help=command.help,
            description=command.description or command.help,
            formatter_class=_HelpFormatter,
        )
        module.configure_parser(child)
        child.set_defaults(_run=_runner(command))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = int(args._run(args))
        sys.stdout.flush()  # surface a closed pipe here, not at interpreter exit
        return code
    except (SLOError, MissingExtraError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `cache-slo-exporter ... | head`: the reader left, not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # nothing left to flush at exit
        return 0


if __name__ == "__main__":
    sys.exit(main())
