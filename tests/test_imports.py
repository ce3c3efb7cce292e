"""Light imports and honest dependencies: each part loads only what it needs.

Each check runs in a fresh interpreter, since this test process has imported
everything already.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from exporter.cli import EXTRAS

ROOT = Path(__file__).resolve().parents[1]
SERVER_ONLY = EXTRAS["server"]


def loaded_after(statement: str) -> set[str]:
    """Top-level module names in ``sys.modules`` after running ``statement``."""
    code = f"import sys, json\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    return {name.split(".")[0] for name in json.loads(out)}


@pytest.mark.parametrize(
    "module",
    ["exporter", "exporter.slo", "exporter.rules", "exporter.dashboards", "exporter.generate"],
)
def test_the_model_and_the_generators_do_not_load_redis_or_the_server(module: str) -> None:
    loaded = loaded_after(f"import {module}")
    assert "redis" not in loaded
    assert not loaded & set(SERVER_ONLY), loaded & set(SERVER_ONLY)


def test_the_client_does_not_load_the_server_or_the_generators() -> None:
    loaded = loaded_after("from exporter.client import CacheService, AsyncCacheService")
    assert "redis" in loaded
    assert not loaded & {*SERVER_ONLY, "grafanalib"}


def test_the_package_root_still_offers_the_client_on_first_use() -> None:
    loaded = loaded_after("import exporter; exporter.CacheService; exporter.AsyncCacheService")
    assert "redis" in loaded


def test_the_command_line_builds_without_the_server_extra() -> None:
    """Every command's flags (``--help`` included) load without FastAPI and friends;
    ``serve`` and ``demo`` then say which extra to install, in one line, exit 2."""
    blocked = "; ".join(f"sys.modules[{name!r}] = None" for name in SERVER_ONLY)
    code = (
        f"import sys; {blocked}\n"
        "from exporter.cli import main\n"
        "sys.exit(main(sys.argv[1:]))"
    )

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT
        )

    assert cli("serve", "--help").returncode == 0
    assert cli("check-slo").returncode == 0
    for command in ("serve", "demo"):
        done = cli(command)
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip().splitlines() == [
            "error: this command needs the [server] extra "
            f"({', '.join(SERVER_ONLY)} not installed): "
            "pip install 'cache-slo-exporter[server]'"
        ]
        assert "Traceback" not in done.stderr


def test_the_extras_table_names_what_pyproject_installs() -> None:
    """``cli.EXTRAS`` (import names, checked at run time) and pyproject's extra
    (distribution names, installed by pip) say the same thing twice: keep them equal."""
    import re
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for extra, modules in EXTRAS.items():
        wanted = project["optional-dependencies"][extra]
        names = {re.split(r"[\s<>=!~\[;]", req, maxsplit=1)[0].lower() for req in wanted}
        assert names == set(modules), (extra, names)
