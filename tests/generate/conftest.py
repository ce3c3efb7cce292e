"""Fixtures: the generator's output for the shipped SLO file, written to temp dirs."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.generate import render_all, source_name
from exporter.rules.profiles import FAST, PRODUCTION
from exporter.slo import load_slo

REPO = Path(__file__).resolve().parents[2]


def write(files: dict[str, str], root: Path) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, "utf-8")
    return root


@pytest.fixture(scope="session")
def production(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    files, _ = render_all(load_slo(), source=source_name(None), profile=PRODUCTION)
    return files


@pytest.fixture(scope="session")
def production_dir(production: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(production, tmp_path_factory.mktemp("production"))


@pytest.fixture(scope="session")
def fast_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    files, _ = render_all(load_slo(), source=source_name(None), profile=FAST)
    return write(files, tmp_path_factory.mktemp("fast"))
