"""Fixtures for the exporter's tests: a real PostgreSQL, the exporter as a process,
``promtool``, and scrape helpers."""

from __future__ import annotations

import resource
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.postgres import PostgresServer
from tests.support.processes import cleanup_env, free_port, require_binary, wait_for_port

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parents[2]


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Parsed exposition text: (sample name, labels) -> value."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample, ``None`` when absent."""
    return samples(text).get((name, frozenset(labels.items())))


def promtool_check(text: str) -> subprocess.CompletedProcess[str]:
    """``promtool check metrics`` on exposition text."""
    return subprocess.run(
        [require_binary("promtool"), "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One real PostgreSQL cluster (password auth) for the session."""
    server = PostgresServer().start()
    yield server
    server.cleanup()


@dataclass
class Exporter:
    """A running ``cache-slo-exporter serve`` process."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, **kwargs: object) -> httpx.Response:
        return httpx.get(self.base + path, timeout=30, **kwargs)  # type: ignore[arg-type]

    def metrics(self) -> str:
        response = self.get("/metrics")
        assert response.status_code == 200, response.text
        return response.text

    @property
    def log(self) -> str:
        return self.log_path.read_text("utf-8", "replace")


def exporter_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "exporter.cli", "serve", *args]


@pytest.fixture
def exporter_factory(tmp_path: Path) -> Iterator[Callable[..., Exporter]]:
    """Start ``cache-slo-exporter serve`` subprocesses on free ports; stopped after."""
    started: list[Exporter] = []

    def start(*args: str, env: dict[str, str] | None = None, nofile: int | None = None) -> Exporter:
        """``nofile``: the process's file-descriptor limit (soft and hard)."""
        port = free_port()

        def limit_files() -> None:
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        log_path = tmp_path / f"exporter{len(started)}.log"
        full_env = {**cleanup_env(), **(env or {})}
        with log_path.open("wb") as log_file:
            proc = subprocess.Popen(
                exporter_command("--listen", f"127.0.0.1:{port}", *args),
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env=full_env,
                preexec_fn=limit_files,
            )
        exporter = Exporter(proc, port, log_path)
        started.append(exporter)
        try:
            wait_for_port(port, timeout=30, proc=proc)
        except Exception as exc:
            raise RuntimeError(f"exporter did not start:\n{exporter.log}") from exc
        return exporter

    yield start
    for exporter in started:
        if exporter.proc.poll() is None:
            exporter.proc.terminate()
            try:
                exporter.proc.wait(10)
            except subprocess.TimeoutExpired:
                exporter.proc.kill()
                exporter.proc.wait(10)


def make_tls_certs(directory: Path) -> dict[str, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 (real ``openssl``)."""
    openssl = require_binary("openssl")
    directory.mkdir(parents=True, exist_ok=True)
    paths = {name: directory / name for name in ("ca.crt", "ca.key", "server.crt", "server.key")}
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    steps = [
        [openssl, "req", "-x509", *ec, "-keyout", str(paths["ca.key"]),
         "-out", str(paths["ca.crt"]), "-days", "2", "-subj", "/CN=cache-slo-test-ca"],
        [openssl, "req", *ec, "-keyout", str(paths["server.key"]),
         "-out", str(directory / "server.csr"), "-subj", "/CN=127.0.0.1"],
    ]  # fmt: skip
    for step in steps:
        subprocess.run(step, check=True, capture_output=True, timeout=60)
    ext = directory / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    subprocess.run(
        [openssl, "x509", "-req", "-in", str(directory / "server.csr"),
         "-CA", str(paths["ca.crt"]), "-CAkey", str(paths["ca.key"]), "-CAcreateserial",
         "-out", str(paths["server.crt"]), "-days", "2", "-extfile", str(ext)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return paths
