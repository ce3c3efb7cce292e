"""Run Prometheus' own tools for tests: ``promtool``, ``prometheus`` and Alertmanager.

Each server runs on a free loopback port in its own temp directory and is
stopped by whoever started it (use them as context managers)::

    with PrometheusServer(tmp_path / "prom", config, rule_files=[...]) as prom:
        prom.query("up")

Binaries come from the OS packages the test command installs; a missing one
fails the test (never skips it).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import yaml

from tests.support.processes import cleanup_env, free_port, require_binary, wait_for_port

ALERTMANAGER_BINARIES = ("prometheus-alertmanager", "alertmanager")


def promtool(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``promtool`` and return the finished process (output captured as text)."""
    binary = require_binary("promtool")
    return subprocess.run(
        [binary, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=600
    )


class _Server:
    """A child process with an HTTP API on 127.0.0.1:port and a ``/-/ready`` endpoint."""

    name = "server"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def _args(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout: float = 30.0) -> _Server:
        args = self._args()
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            args, cwd=self.workdir, stdout=self._log, stderr=subprocess.STDOUT, env=cleanup_env()
        )
        try:
            wait_for_port(self.port, timeout=timeout, proc=self.proc)
            self._wait_ready(timeout)
        except Exception as exc:
            self.stop()
            log = self.log_path.read_text("utf-8", "replace")[-3000:]
            raise RuntimeError(f"{self.name} did not become ready: {exc}\n{log}") from exc
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.get("/-/ready").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.url}/-/ready not ready within {timeout}s")
            time.sleep(0.1)

    def get(self, path: str, **params: str) -> httpx.Response:
        with httpx.Client(trust_env=False, timeout=10) as client:
            return client.get(self.url + path, params=params)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> _Server:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class PrometheusServer(_Server):
    """A real ``prometheus`` with the given config and rule files (copied into workdir).

    ``config_yaml`` is the prometheus.yml text (or a dict); ``rule_files`` are
    added to its ``rule_files``; ``alertmanager_url`` adds an ``alerting`` section.
    Firing alerts are re-sent every second (not every minute), so a test sees an
    alert in Alertmanager soon after it fires; ``extra_args`` go to the command line.
    """

    name = "prometheus"

    def __init__(
        self,
        workdir: Path,
        config_yaml: str | dict[str, Any] = "",
        rule_files: Sequence[Path] = (),
        alertmanager_url: str | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        super().__init__(workdir)
        self.extra_args = list(extra_args)
        config = yaml.safe_load(config_yaml) if isinstance(config_yaml, str) else config_yaml
        self.config: dict[str, Any] = dict(config or {})
        rules_dir = workdir / "rules"
        rules_dir.mkdir(parents=True, exist_ok=True)
        copies = []
        for i, path in enumerate(rule_files):
            copy = rules_dir / f"{i:02d}-{Path(path).name}"
            shutil.copyfile(path, copy)
            copies.append(str(copy))
        self.config["rule_files"] = [*self.config.get("rule_files", []), *copies]
        if alertmanager_url is not None:
            target = alertmanager_url.removeprefix("http://").rstrip("/")
            self.config["alerting"] = {
                "alertmanagers": [{"static_configs": [{"targets": [target]}]}]
            }

    def _args(self) -> list[str]:
        config_path = self.workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(self.config, sort_keys=False), "utf-8")
        return [
            require_binary("prometheus"),
            f"--config.file={config_path}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--web.enable-lifecycle",
            "--rules.alert.resend-delay=1s",
            "--log.level=warn",
            *self.extra_args,
        ]

    def start(self, timeout: float = 30.0) -> PrometheusServer:
        super().start(timeout)
        return self

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def api(self, path: str, **params: str) -> Any:
        """``GET /api/v1/<path>``'s ``data``, failing clearly on an error answer."""
        response = self.get(f"/api/v1/{path}", **params)
        body = response.json()
        if body.get("status") != "success":
            raise RuntimeError(f"{path} {params}: {body.get('error', body)}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; the ``result`` list (vector samples)."""
        data = self.api("query", query=expr)
        result: list[dict[str, Any]] = data["result"]
        return result

    def rule_groups(self) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = self.api("rules")["groups"]
        return groups

    def alerts(self) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = self.api("alerts")["alerts"]
        return alerts


class AlertmanagerServer(_Server):
    """A real Alertmanager (Debian names it ``prometheus-alertmanager``), clustering off."""

    name = "alertmanager"

    def __init__(self, workdir: Path, config_yaml: str | dict[str, Any] | None = None) -> None:
        super().__init__(workdir)
        default = {"route": {"receiver": "null"}, "receivers": [{"name": "null"}]}
        if config_yaml is None:
            self.config: dict[str, Any] = default
        elif isinstance(config_yaml, str):
            self.config = yaml.safe_load(config_yaml)
        else:
            self.config = config_yaml

    def _args(self) -> list[str]:
        binary = next(
            (b for b in ALERTMANAGER_BINARIES if shutil.which(b)), ALERTMANAGER_BINARIES[0]
        )
        config_path = self.workdir / "alertmanager.yml"
        config_path.write_text(yaml.safe_dump(self.config, sort_keys=False), "utf-8")
        return [
            require_binary(binary),
            f"--config.file={config_path}",
            f"--storage.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ]

    def start(self, timeout: float = 30.0) -> AlertmanagerServer:
        super().start(timeout)
        return self

    def __enter__(self) -> AlertmanagerServer:
        return self.start()

    def alerts(self) -> list[dict[str, Any]]:
        """Alerts Alertmanager holds (``GET /api/v2/alerts``)."""
        response = self.get("/api/v2/alerts")
        response.raise_for_status()
        alerts: list[dict[str, Any]] = response.json()
        return alerts


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll ``predicate()`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        found = predicate()
        if found:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout}s")
        time.sleep(interval)
