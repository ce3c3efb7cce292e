"""The ``cache-slo-exporter`` command line.

Each subcommand lives in the module that does its work; that module provides
``configure_parser(parser)`` and ``run(args) -> int``.  This file only routes.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from exporter.slo import SLOError, format_duration, load_slo

#: subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "check-slo": ("exporter.cli", "Validate an SLO file and print what it declares."),
    "demo": ("exporter.demo.command", "Run Redis, a workload, the exporter and Prometheus here."),
    "docs": ("exporter.reference", "Write the metric and configuration references into docs/."),
    "generate": ("exporter.generate", "Write alert rules, rule tests and dashboards from the SLO."),
    "serve": ("exporter.server", "Serve /metrics for Redis (INFO, sampling) and PostgreSQL."),
}


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "slo",
        nargs="?",
        help="SLO file (default: the shipped exporter/data/slo.yaml, ADR-004's numbers)",
    )


def run(args: argparse.Namespace) -> int:
    """``check-slo``: refuse a bad file with file, field and expectation."""
    slo = load_slo(args.slo)
    print(f"{slo.source}: valid (version {slo.version}, window {format_duration(slo.window)})")
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
    return 0


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
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        module = (
            sys.modules[__name__]
            if module_name == __name__
            else importlib.import_module(module_name)
        )
        child = sub.add_parser(
            name, help=help_text, description=help_text, formatter_class=_HelpFormatter
        )
        module.configure_parser(child)
        child.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = int(args._run(args))
        sys.stdout.flush()  # surface a closed pipe here, not at interpreter exit
        return code
    except SLOError as exc:
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
