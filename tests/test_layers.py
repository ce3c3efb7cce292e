"""The house: each part of the package imports only the parts below it.

``docs/architecture.md`` draws these layers; this test keeps the drawing true.
Every ``import`` counts, at module level or inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import exporter

PACKAGE = Path(exporter.__file__).parent

#: part -> the parts it may import (besides itself).  Bottom to top: the contract and
#: redaction (leaves), the SLO model, the SLI expressions and naming conventions, then
#: the client and the collectors (runtime), the generators and the status page
#: (read the model), and the faces (config, server, cli, demo, reference) on top.
ALLOWED: dict[str, set[str]] = {
    "metrics": set(),
    "redaction": set(),
    "redis_urls": set(),
    "slo": {"metrics"},
    "paths": {"metrics"},
    "rules.model": set(),
    "rules.conventions": {"metrics", "slo"},
    "sli": {"metrics", "slo", "rules.conventions", "rules.model"},
    "client": {"metrics", "slo", "redis_urls"},
    "collectors": {"metrics", "slo", "redaction", "paths", "redis_urls"},
    "asgi": {"metrics", "paths", "client"},
    "rules": {"metrics", "slo", "sli", "rules.conventions", "rules.model"},
    "dashboards": {"metrics", "slo", "sli", "rules", "rules.conventions", "rules.model"},
    "status": {"metrics", "slo", "sli", "rules", "rules.conventions", "redaction"},
    "kubernetes": set(),
    "generate": {"slo", "paths", "rules", "dashboards", "kubernetes"},
    "scrape_targets": set(),
    "http_limits": set(),
    "text_format": set(),
    "logs": {"redaction"},
    "config": {"slo", "redaction", "paths", "redis_urls"},
    "server": {
        "slo", "config", "redaction", "scrape_targets", "http_limits", "logs", "collectors",
        "status", "text_format",
    },
    "demo": {"metrics", "slo", "client", "asgi"},
    "reference": {"metrics", "slo", "cli"},
    "cli": {"slo", "paths"},
    "__init__": {"slo", "client"},
}


#: modules of a package that sit below the rest of it: the rules' recording names and
#: rule model, which the SLI module (below the rule builders) also uses
OWN_PARTS = ("rules.conventions", "rules.model")


def part_of(module: str) -> str:
    """``exporter.rules.builders`` -> ``rules``; the modules of :data:`OWN_PARTS` are
    parts of their own."""
    name = module.removeprefix("exporter.").removeprefix("exporter")
    for own in OWN_PARTS:
        if name == own or name.startswith(f"{own}."):
            return own
    return name.split(".")[0] or "__init__"


def imports_of(source: Path) -> set[str]:
    """The package modules ``source`` imports at run time (``if TYPE_CHECKING:`` blocks,
    read by the type checker only, do not count)."""
    module = ".".join(source.relative_to(PACKAGE.parent).with_suffix("").parts)
    tree = ast.parse(source.read_text(), str(source))
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for stmt in node.body
        for inner in ast.walk(stmt)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("exporter"))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("exporter"):
            assert node.module is not None
            for alias in node.names:  # from exporter.rules import conventions: a module
                sub = PACKAGE.parent.joinpath(*node.module.split("."), alias.name)
                is_module = sub.with_suffix(".py").exists() or sub.is_dir()
                found.add(f"{node.module}.{alias.name}" if is_module else node.module)
    found.discard(module)
    return found


def test_every_part_imports_only_the_parts_below_it() -> None:
    wrong = []
    for source in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(source.relative_to(PACKAGE.parent).with_suffix("").parts)
        part = part_of(module)
        assert part in ALLOWED, f"{module}: a new part; place it in ALLOWED and the docs"
        for imported in sorted(imports_of(source)):
            target = part_of(imported)
            if target != part and target not in ALLOWED[part]:
                wrong.append(f"{module} imports {imported} ({part} -> {target})")
    assert wrong == []


def test_the_layers_have_no_cycle() -> None:
    seen: dict[str, int] = {}

    def depth(part: str, path: tuple[str, ...] = ()) -> int:
        assert part not in path, f"import cycle: {' -> '.join((*path, part))}"
        if part not in seen:
            seen[part] = 1 + max((depth(p, (*path, part)) for p in ALLOWED[part]), default=0)
        return seen[part]

    for part in ALLOWED:
        depth(part)
