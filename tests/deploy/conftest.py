"""Paths of the deploy files and the generated output they carry."""

from __future__ import annotations

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
def rule_files() -> list[Path]:
    """The generated rules files the stack mounts (alerts/*.rules.yml)."""
    files = sorted((ROOT / "alerts").glob("*.rules.yml"))
    if not files:
        raise RuntimeError("alerts/*.rules.yml missing: run cache-slo-exporter generate")
    return files
