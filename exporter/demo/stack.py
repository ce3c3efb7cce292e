"""The demo stack: Redis, the app, the exporter, Prometheus and Alertmanager on loopback.

Everything lives in one temp directory that :meth:`Stack.stop` removes, and
every program is a child process :meth:`Stack.stop` ends; a stack that failed
half-way through :meth:`Stack.start` is stopped the same way.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

from exporter.demo.processes import Child, DemoError, free_port, which
from exporter.demo.proxy import DelayProxy
from exporter.demo.receiver import Notification, WebhookReceiver
from exporter.slo import load_slo

#: Prometheus job names: the generator's defaults, which its rules select on
EXPORTER_JOB = "cache-slo-exporter"
APP_JOB = "cache-app"
#: scenario -> (delay the proxy adds, share of Redis requests delayed); the GET SLO is
#: 10 ms for 99 %: "partial" slows 3 % (p99 breaks, budget burns at 3x: a ticket, no
#: page), "degraded" slows every request (pages)
SCENARIO_LATENCY = {"healthy": (0.0, 1.0), "partial": (0.015, 0.03), "degraded": (0.015, 1.0)}
#: Redis as ADR-004 runs it, with a memory cap small enough that the demo evicts
REDIS_SETTINGS = (
    ("maxmemory", "48mb"),
    ("maxmemory-policy", "allkeys-lru"),
    ("notify-keyspace-events", "Exe"),
    ("save", ""),
    ("appendonly", "no"),
)
#: Alertmanager grouping and inhibition, as in deploy/alertmanager/alertmanager.yml (a test
#: keeps the two equal): a page holds back tickets of the same objective
GROUP_BY = ("alertname", "slo", "type", "operation")
INHIBIT_RULES: tuple[dict[str, list[str]], ...] = (
    {
        # only a page naming an objective: RedisDown has no slo/type/operation either
        "source_matchers": ['severity="page"', 'slo=~".+"'],
        "target_matchers": ['severity="ticket"'],
        "equal": ["slo", "type", "operation"],
    },
    {
        "source_matchers": ['severity="page"', 'alertname="CacheHitRateBudgetBurn"'],
        "target_matchers": ['severity="ticket"', 'alertname="LowCacheHitRate"'],
        "equal": ["type"],
    },
    {
        "source_matchers": ['severity="page"', 'alertname="CacheLatencyBudgetBurn"'],
        "target_matchers": ['severity="ticket"', 'alertname="HighCacheLatency"'],
        "equal": ["operation"],
    },
)
#: where Debian's prometheus-alertmanager package puts its binary when not on PATH
_EXTRA_BIN = ("/usr/bin", "/usr/sbin", "/usr/local/bin")


@dataclass
class StackOptions:
    """What to run and how fast to scrape."""

    scenario: str = "healthy"
    redis_url: str | None = None
    slo: str | None = None
    rate: float = 300.0
    profile: str = "production"  # rule profile: production or fast
    scrape_interval: str = "5s"
    group_wait: str = "10s"
    with_prometheus: bool | None = None  # None: when the binaries are installed
    seed: int | None = None
    #: PostgreSQL for the exporter's buffer-cache layer (passed in its environment)
    postgres_dsn: str | None = None
    on_alert: Callable[[Notification], None] | None = None
    preferred_ports: dict[str, int] = field(default_factory=dict)


class Stack:
    """Start with :meth:`start`, read :attr:`urls`, end with :meth:`stop`."""

    def __init__(self, options: StackOptions) -> None:
        self.options = options
        self.slo = load_slo(options.slo)  # refuse a bad SLO file before starting anything
        self.tmp = Path(tempfile.mkdtemp(prefix="cache-slo-demo-"))
        self.children: list[Child] = []
        self.proxy: DelayProxy | None = None
        self.receiver: WebhookReceiver | None = None
        self.urls: dict[str, str] = {}
        self.redis_url = ""
        self.scenario = options.scenario
        self.generated: Path | None = None

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> Stack:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        opts = self.options
        self.redis_url = opts.redis_url or self._start_redis()
        host, port = _host_port(self.redis_url)
        self.proxy = DelayProxy(host, port).start()
        app_port = self._port("app", 8000)
        self._spawn(
            "app",
            [
                sys.executable,
                "-m",
                "exporter.demo.workload",
                f"--metrics-port={app_port}",
                f"--rate={opts.rate:g}",
                *([f"--slo={opts.slo}"] if opts.slo else []),
                *([f"--seed={opts.seed}"] if opts.seed is not None else []),
            ],
            app_port,
            env={"REDIS_URL": self._proxied_url()},  # an env var, unlike argv, is not public
        )
        self.urls["app metrics"] = f"http://127.0.0.1:{app_port}/metrics"

        # the exporter starts last (it needs Prometheus' URL) but Prometheus scrapes it
        exporter_port = self._port("exporter", 9150)
        prometheus_url = None
        if self._want_prometheus():
            prometheus_url = self._start_prometheus_and_alertmanager(app_port, exporter_port)
        self._spawn(
            "exporter",
            [
                sys.executable,
                "-m",
                "exporter.cli",
                "serve",
                f"--listen=127.0.0.1:{exporter_port}",
                *([f"--slo={opts.slo}"] if opts.slo else []),
                *([f"--prometheus-url={prometheus_url}"] if prometheus_url else []),
                *(
                    [f"--alertmanager-url={self.urls['alertmanager']}"]
                    if "alertmanager" in self.urls
                    else []
                ),
            ],
            exporter_port,
            env={
                "REDIS_URL": self.redis_url,
                **({"POSTGRES_DSN": opts.postgres_dsn} if opts.postgres_dsn else {}),
            },
        )
        self.urls["exporter metrics"] = f"http://127.0.0.1:{exporter_port}/metrics"
        if prometheus_url:
            self.urls["SLO status page"] = f"http://127.0.0.1:{exporter_port}/"
        self.set_scenario(opts.scenario)

    def stop(self) -> None:
        """End every child (newest first), the proxy and receiver; remove the temp dir."""
        for child in reversed(self.children):
            child.stop()
        self.children.clear()
        if self.proxy is not None:
            self.proxy.stop()
            self.proxy = None
        if self.receiver is not None:
            self.receiver.stop()
            self.receiver = None
        shutil.rmtree(self.tmp, ignore_errors=True)

    def set_scenario(self, name: str) -> None:
        """Switch the app's mix and the proxy's delay together."""
        app = next(c for c in self.children if c.name == "app")
        request = urllib.request.Request(
            f"http://127.0.0.1:{app.port}/scenario", data=name.encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            response.read()
        assert self.proxy is not None
        self.proxy.delay, self.proxy.slow_share = SCENARIO_LATENCY[name]
        self.scenario = name

    def dead_children(self) -> list[Child]:
        return [c for c in self.children if not c.running]

    # --- parts -----------------------------------------------------------------------

    def _port(self, name: str, default: int) -> int:
        preferred = self.options.preferred_ports.get(name, default)
        return free_port(preferred)

    def _spawn(
        self,
        name: str,
        args: list[str],
        port: int,
        timeout: float = 20.0,
        env: dict[str, str] | None = None,
    ) -> Child:
        child = Child(name, args, port, self.tmp, env)
        self.children.append(child)
        child.start(timeout)
        return child

    def _proxied_url(self) -> str:
        """The Redis URL with the proxy's address: same scheme, credentials, db, options."""
        assert self.proxy is not None
        parts = urlsplit(self.redis_url)
        auth = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        db = parts.path.strip("/") or "0"
        return urlunsplit(
            (parts.scheme, f"{auth}127.0.0.1:{self.proxy.port}", f"/{db}", parts.query, "")
        )

    def _start_redis(self) -> str:
        binary = which("redis-server", *_EXTRA_BIN)
        if binary is None:
            raise DemoError(
                "redis-server is not installed: run `make demo` (it installs the OS "
                "packages) or pass --redis-url"
            )
        port = self._port("redis", 6399)
        args = [binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(self.tmp)]
        for name, value in REDIS_SETTINGS:
            args += [f"--{name}", value]
        self._spawn("redis", args, port)
        self.urls["redis"] = f"redis://127.0.0.1:{port}/0"
        return self.urls["redis"]

    def _want_prometheus(self) -> bool:
        found = bool(which("prometheus", *_EXTRA_BIN)) and bool(
            which("prometheus-alertmanager", *_EXTRA_BIN) or which("alertmanager", *_EXTRA_BIN)
        )
        wanted = self.options.with_prometheus
        if wanted and not found:
            raise DemoError("prometheus / prometheus-alertmanager are not installed")
        return found if wanted is None else wanted

    def _generate_rules(self) -> Path:
        out = self.tmp / "generated"
        args = [
            sys.executable,
            "-m",
            "exporter.cli",
            "generate",
            f"--out={out}",
            f"--profile={self.options.profile}",
            f"--exporter-job={EXPORTER_JOB}",
            f"--app-job={APP_JOB}",
            *([f"--slo={self.options.slo}"] if self.options.slo else []),
        ]
        done = subprocess.run(args, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise DemoError(f"generating the rules failed:\n{done.stderr.strip()}")
        return out

    def _start_prometheus_and_alertmanager(self, app_port: int, exporter_port: int) -> str:
        generated = self._generate_rules()
        self.receiver = WebhookReceiver(self.options.on_alert).start()
        am_port = self._port("alertmanager", 9093)
        am_config = self.tmp / "alertmanager.yml"
        am_config.write_text(yaml.safe_dump(self._alertmanager_config()), "utf-8")
        am_binary = which("prometheus-alertmanager", *_EXTRA_BIN) or which("alertmanager")
        assert am_binary is not None
        self._spawn(
            "alertmanager",
            [
                am_binary,
                f"--config.file={am_config}",
                f"--storage.path={self.tmp / 'alertmanager-data'}",
                f"--web.listen-address=127.0.0.1:{am_port}",
                f"--cluster.listen-address=127.0.0.1:{free_port()}",
            ],
            am_port,
        )
        self.urls["alertmanager"] = f"http://127.0.0.1:{am_port}"

        prom_port = self._port("prometheus", 9090)
        prom_config = self.tmp / "prometheus.yml"
        prom_config.write_text(
            yaml.safe_dump(
                self._prometheus_config(generated, am_port, exporter_port, app_port),
                sort_keys=False,
            ),
            "utf-8",
        )
        prometheus = which("prometheus", *_EXTRA_BIN)
        assert prometheus is not None
        self._spawn(
            "prometheus",
            [
                prometheus,
                f"--config.file={prom_config}",
                f"--storage.tsdb.path={self.tmp / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
            prom_port,
            timeout=30,
        )
        self.urls["prometheus"] = f"http://127.0.0.1:{prom_port}"
        self.generated = generated
        return self.urls["prometheus"]

    def _prometheus_config(
        self, generated: Path, am_port: int, exporter_port: int, app_port: int
    ) -> dict[str, Any]:
        interval = self.options.scrape_interval
        return {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "rule_files": [str(generated / "alerts" / "*.rules.yml")],
            "alerting": {
                "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]
            },
            "scrape_configs": [
                {
                    "job_name": EXPORTER_JOB,
                    # the exporter's instance label is the Redis address: keep it
                    "honor_labels": True,
                    "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}],
                },
                {"job_name": APP_JOB, "static_configs": [{"targets": [f"127.0.0.1:{app_port}"]}]},
            ],
        }

    def _alertmanager_config(self) -> dict[str, Any]:
        """deploy/alertmanager/alertmanager.yml's routing, receivers pointed at the demo."""
        assert self.receiver is not None
        wait = self.options.group_wait
        return {
            "route": {
                "receiver": "ticket",
                "group_by": list(GROUP_BY),
                "group_wait": wait,
                "group_interval": wait,
                "repeat_interval": "1h",
                "routes": [
                    {"receiver": "pager", "matchers": ['severity="page"']},
                    {"receiver": "ticket", "matchers": ['severity="ticket"']},
                ],
            },
            "inhibit_rules": [dict(rule) for rule in INHIBIT_RULES],
            "receivers": [
                {
                    "name": name,
                    "webhook_configs": [{"url": self.receiver.url(name), "send_resolved": True}],
                }
                for name in ("pager", "ticket")
            ],
        }


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise DemoError(f"--redis-url: expected redis://host:port/db, got scheme {parts.scheme!r}")
    return parts.hostname, parts.port or 6379
