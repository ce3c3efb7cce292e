"""Paths of the deploy files and the generated output they carry."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"


def venv_tool(name: str) -> str:
    """A console script installed into this interpreter's environment (test extras)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise RuntimeError(f"{name!r} is missing from {path.parent}; run make test (pip extras)")
    return str(path)


@pytest.fixture(scope="session")
def rule_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The rules files the generator writes now (production profile), as the stack mounts."""
    out = tmp_path_factory.mktemp("generated")
    done = subprocess.run(
        [sys.executable, "-m", "exporter.cli", "generate", f"--out={out}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    files = sorted((out / "alerts").glob("*.rules.yml"))
    assert files, f"the generator wrote no alerts/*.rules.yml under {out}"
    return files
