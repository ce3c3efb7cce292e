"""The exporter image: hadolint-clean, pinned base, non-root, with a health check."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.deploy.conftest import DEPLOY, venv_tool

DOCKERFILE = DEPLOY / "Dockerfile"


def test_hadolint_finds_nothing() -> None:
    out = subprocess.run(
        [venv_tool("hadolint"), "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_base_image_is_pinned_slim_python_311() -> None:
    bases = re.findall(r"^FROM\s+(\S+)", DOCKERFILE.read_text(), re.MULTILINE)
    assert bases
    for base in bases:
        assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", base), base


def test_runs_as_non_root_and_checks_healthz() -> None:
    text = DOCKERFILE.read_text()
    final_stage = text.rsplit("\nFROM ", 1)[1]
    users = re.findall(r"^USER\s+(\S+)", final_stage, re.MULTILINE)
    assert users and users[-1] not in {"root", "0"}
    assert re.search(r"^HEALTHCHECK .*\n?.*/healthz", final_stage, re.MULTILINE)


def test_every_deploy_file_uses_the_exporters_default_port() -> None:
    import yaml

    from exporter.config import DEFAULT_PORT
    from tests.deploy.conftest import K8S

    assert f"EXPOSE {DEFAULT_PORT}" in DOCKERFILE.read_text()
    assert f"127.0.0.1:{DEFAULT_PORT}/healthz" in DOCKERFILE.read_text()
    service = yaml.safe_load((K8S / "service.yaml").read_text())
    assert [p["port"] for p in service["spec"]["ports"]] == [DEFAULT_PORT]
    deployment = yaml.safe_load((K8S / "deployment.yaml").read_text())
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert [p["containerPort"] for p in container["ports"]] == [DEFAULT_PORT]
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert compose["services"]["exporter"]["ports"] == [f"{DEFAULT_PORT}:{DEFAULT_PORT}"]
    prometheus = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    targets = [
        t for j in prometheus["scrape_configs"] for s in j["static_configs"] for t in s["targets"]
    ]
    assert f"exporter:{DEFAULT_PORT}" in targets


def test_the_build_context_leaves_out_the_checkout_s_bulk_and_secrets() -> None:
    """BuildKit reads ``deploy/Dockerfile.dockerignore`` for this Dockerfile: the context
    (the repository root) must not ship .git, the venv, caches or local env files, yet
    keep everything the Dockerfile copies."""
    ignore = DEPLOY / "Dockerfile.dockerignore"
    assert ignore.exists(), "no deploy/Dockerfile.dockerignore: the whole checkout is sent"
    patterns = [
        line.strip()
        for line in ignore.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for needed in (".git", ".venv", "**/__pycache__", "**/*.pyc", ".env", "tests"):
        assert needed in patterns, needed
    copied = re.findall(r"^COPY\s+(?!--from)(.+)\s+\S+$", DOCKERFILE.read_text(), re.MULTILINE)
    sources = {s for line in copied for s in line.split()}
    assert sources == {"pyproject.toml", "README.md", "exporter"}
    assert not sources & set(patterns)


def test_the_root_dockerignore_matches_the_dockerfile_one() -> None:
    """docker-compose v1 and the classic builder read only ``.dockerignore`` at the root."""

    def patterns(path: Path) -> list[str]:
        lines = path.read_text().splitlines()
        return [line.strip() for line in lines if line.strip() and not line.startswith("#")]

    root = DEPLOY.parent / ".dockerignore"
    assert patterns(root) == patterns(DEPLOY / "Dockerfile.dockerignore")
