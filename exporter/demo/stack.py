"""The demo stack: Redis, PostgreSQL behind it, the app, nginx in front of it, the
exporter, Prometheus and Alertmanager on loopback, and the browsers' traffic through nginx.

Everything lives in one temp directory that :meth:`Stack.stop` removes, and
every program is a child process :meth:`Stack.stop` ends; a stack that failed
half-way through :meth:`Stack.start` is stopped the same way.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
import yaml

from exporter.demo.database import Binaries, Cluster, find_binaries
from exporter.demo.edge import EdgeTraffic, demo_layers, nginx_config
from exporter.demo.processes import (
    Child,
    DemoError,
    PortTaken,
    bound_socket,
    free_port,
    which,
)
from exporter.demo.proxy import DelayProxy
from exporter.demo.receiver import Notification, WebhookReceiver
from exporter.demo.workload import DELAYED_URL_ENV, POSTGRES_DSN_ENV, TOKEN_ENV
from exporter.slo import SLO, default_slo_path, load_slo

#: Prometheus job names: the generator's defaults, which its rules select on
EXPORTER_JOB = "cache-slo-exporter"
APP_JOB = "cache-app"
#: scenario -> (delay the proxy adds, share of Redis requests delayed); the GET SLO is
#: 10 ms for 99 %: "partial" slows 3 % (p99 breaks, budget burns at 3x: a ticket, no
#: page), "degraded" slows every request (pages)
SCENARIO_LATENCY = {"healthy": (0.0, 1.0), "partial": (0.015, 0.03), "degraded": (0.015, 1.0)}
#: Redis as ADR-004 runs it (a memory cap, LRU eviction); the cap is well above what a
#: healthy demo writes in hours (61 MB after one hour at 300 requests/s, see
#: exporter.demo.mix), so the healthy scenario never evicts and RedisMemoryNearMax (90 %)
#: stays silent
REDIS_SETTINGS = (
    ("maxmemory", "256mb"),
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
#: ports a child that binds itself gets before the demo gives up (each one taken between
#: the demo finding it free and the child binding it: other demos, tests, services)
BIND_ATTEMPTS = 5
#: Prometheus' web pages: the React UI (/alerts, /graph) or, in builds without it
#: (Debian's package), only the classic pages under /classic
PROMETHEUS_PAGES = (("/alerts", "/graph"), ("/classic/alerts", "/classic/graph"))


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
    #: without a DSN, the demo's own PostgreSQL (exporter.demo.database): None when
    #: installed, True to require it, False for none
    postgres: bool | None = None
    #: nginx in front of the app (the CDN layer); None: when nginx is installed
    edge: bool | None = None
    #: the browsers' requests per second (through nginx, or to the app without it)
    http_rate: float = 20.0
    on_alert: Callable[[Notification], None] | None = None
    preferred_ports: dict[str, int] = field(default_factory=dict)


class Stack:
    """Start with :meth:`start`, read :attr:`urls`, end with :meth:`stop`."""

    def __init__(self, options: StackOptions) -> None:
        self.options = options
        user_slo = load_slo(options.slo)  # refuse a bad SLO file before starting anything
        self.nginx_binary = which("nginx", *_EXTRA_BIN)
        if options.edge and self.nginx_binary is None:
            raise DemoError("nginx is not installed (Debian: nginx-light)")
        self.edge = bool(self.nginx_binary) if options.edge is None else options.edge
        #: one-line remarks the demo prints with its links (a part it runs without)
        self.notes: list[str] = []
        if not self.edge and options.edge is None:
            self.notes.append(
                "nginx not installed: running without the CDN edge (browsers talk to the app; "
                "`make demo` installs nginx-light)"
            )
        #: PostgreSQL's programs when the demo runs its own
        self.postgres_binaries: Binaries | None = None
        if options.postgres_dsn is None and options.postgres is not False:
            found = find_binaries()
            if isinstance(found, Binaries):
                self.postgres_binaries = found
            elif options.postgres:
                raise DemoError(f"{found} (Debian: postgresql)")
            else:
                self.notes.append(
                    f"{found}: running without the PostgreSQL layer "
                    "(`make demo` installs postgresql)"
                )
        #: the exporter's DSN (holds a password: environments only, never argv or output)
        self.postgres_dsn = options.postgres_dsn or ""
        self.postgres: Cluster | None = None
        self.tmp = Path(tempfile.mkdtemp(prefix="cache-slo-demo-"))
        #: the SLO file every part reads: the given one, plus the demo's layer objectives
        #: when it has none (exporter.demo.edge.demo_layers)
        try:
            self.slo_path = self._demo_slo_file(user_slo)
            self.slo: SLO = load_slo(self.slo_path) if self.slo_path else user_slo
        except BaseException:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise
        self.traffic: EdgeTraffic | None = None
        self.children: list[Child] = []
        self.proxy: DelayProxy | None = None
        self.receiver: WebhookReceiver | None = None
        #: base URL of each part, for code (tests, the status page's links)
        self.urls: dict[str, str] = {}
        #: what the demo prints: pages and commands that show something with the programs
        #: installed here (each part verified to be this run's own before it is listed)
        self.links: dict[str, str] = {}
        #: this run's token: the app echoes it on /healthz
        self.run_id = secrets.token_hex(8)
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
        if self.postgres_binaries is not None:
            self.postgres_dsn = self._start_postgres(self.postgres_binaries)
        app = self._start_app()
        self.urls["app metrics"] = self.links["app metrics"] = (
            f"http://127.0.0.1:{app.port}/metrics"
        )
        self.urls["app"] = f"http://127.0.0.1:{app.port}/"
        browsers_to = app.port
        if self.edge:
            browsers_to = self._start_nginx(app.port).port
            self.urls["edge"] = self.links["edge (nginx)"] = f"http://127.0.0.1:{browsers_to}/"
        self.traffic = EdgeTraffic(browsers_to, opts.http_rate, seed=opts.seed)
        self.traffic.warm()

        # Prometheus starts before the exporter (which links to it) and finds the
        # exporter through a targets file written once the exporter holds its port
        prometheus_url = None
        if self._want_prometheus():
            prometheus_url = self._start_prometheus_and_alertmanager(app.port)
        exporter = self._spawn(
            "exporter",
            lambda port: [
                sys.executable,
                "-m",
                "exporter.cli",
                "serve",
                f"--listen=127.0.0.1:{port}",
                *([f"--slo={self.slo_path}"] if self.slo_path else []),
                *([f"--prometheus-url={prometheus_url}"] if prometheus_url else []),
                *(self._cdn_log_args() if self.edge else []),
                *(
                    [f"--alertmanager-url={self.urls['alertmanager']}"]
                    if "alertmanager" in self.urls
                    else []
                ),
            ],
            self._preferred("exporter", 9150),
            env={
                "REDIS_URL": self.redis_url,
                **({"POSTGRES_DSN": self.postgres_dsn} if self.postgres_dsn else {}),
            },
            identity=self._exporter_is_ours,
        )
        self.urls["exporter metrics"] = self.links["exporter metrics"] = (
            f"http://127.0.0.1:{exporter.port}/metrics"
        )
        if prometheus_url:
            self._write_targets(EXPORTER_JOB, exporter.port)
            self.urls["SLO status page"] = self.links["SLO status page"] = (
                f"http://127.0.0.1:{exporter.port}/"
            )
        self.set_scenario(opts.scenario)
        self.traffic.start()

    def stop(self) -> None:
        """End the browsers, every child (newest first), the proxy and receiver; remove
        the temp dir."""
        if self.traffic is not None:
            self.traffic.stop()
            self.traffic = None
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

    def _preferred(self, name: str, default: int) -> int:
        return self.options.preferred_ports.get(name, default)

    def _spawn(
        self,
        name: str,
        make_args: Callable[[int], list[str]],
        preferred: int,
        *,
        timeout: float = 20.0,
        env: dict[str, str] | None = None,
        identity: Callable[[Child], bool] | None = None,
        user: str | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
    ) -> Child:
        """Start a program that binds its own port; on "address already in use" start it
        again on another port. Returns once the process holds the port and is ours."""
        tried = []
        for attempt in range(BIND_ATTEMPTS):
            port = free_port(preferred if attempt == 0 else 0)
            tried.append(port)
            child = Child(name, make_args(port), port, self.tmp, env, identity=identity,
                          user=user, stop_signal=stop_signal)  # fmt: skip
            self.children.append(child)
            try:
                return child.start(timeout)
            except PortTaken:
                child.stop()
                self.children.remove(child)
        raise DemoError(
            f"{name}: another program took each port it tried ({', '.join(map(str, tried))})"
        )

    def _start_app(self) -> Child:
        """The app gets a socket the demo has bound already: nothing can take it between."""
        opts = self.options
        sock = bound_socket(self._preferred("app", 8000))
        port = int(sock.getsockname()[1])
        # the app reads the demo's own table on a miss; a given DSN is only the exporter's
        own_db = {POSTGRES_DSN_ENV: self.postgres_dsn} if self.postgres is not None else {}
        child = Child(
            "app",
            [
                sys.executable,
                "-m",
                "exporter.demo.workload",
                f"--metrics-fd={sock.fileno()}",
                f"--rate={opts.rate:g}",
                *([f"--slo={self.slo_path}"] if self.slo_path else []),
                *([f"--seed={opts.seed}"] if opts.seed is not None else []),
            ],
            port,
            self.tmp,
            # env vars, unlike argv, are not public: the Redis URL may hold a password
            # healthy talks to Redis directly, the slow scenarios through the proxy
            {
                "REDIS_URL": self.redis_url,
                DELAYED_URL_ENV: self._proxied_url(),
                TOKEN_ENV: self.run_id,
                **own_db,
            },
            identity=self._app_is_ours,
            pass_fds=(sock.fileno(),),
        )
        self.children.append(child)
        try:
            child.start()
        finally:
            sock.close()  # the child has its copy; ours would keep the port open after it
        return child

    # --- identities: "this program on this port is the one this run started" ---------

    def _app_is_ours(self, child: Child) -> bool:
        body = _get(f"http://127.0.0.1:{child.port}/healthz")
        return body.strip() == f"ok {self.run_id}"

    def _edge_is_ours(self, child: Child) -> bool:
        """nginx answers with this run's app behind it (its /healthz, passed through)."""
        return self._app_is_ours(child)

    def _exporter_is_ours(self, child: Child) -> bool:
        host, port = _host_port(self.redis_url)
        body = _get(f"http://127.0.0.1:{child.port}/metrics")
        return f'redis_up{{instance="{host}:{port}"}}' in body

    @staticmethod
    def _redis_is_ours(child: Child) -> bool:
        client = redis.Redis(host="127.0.0.1", port=child.port, socket_timeout=1)
        try:
            info: dict[str, Any] = client.info("server")  # type: ignore[assignment]
            return int(info["process_id"]) == child.pid
        finally:
            client.close()

    @staticmethod
    def _prometheus_is_ours(data_dir: Path) -> Callable[[Child], bool]:
        def check(child: Child) -> bool:
            flags = json.loads(_get(f"http://127.0.0.1:{child.port}/api/v1/status/flags"))
            return bool(flags["data"]["storage.tsdb.path"] == str(data_dir))

        return check

    def _alertmanager_is_ours(self, child: Child) -> bool:
        assert self.receiver is not None
        status = json.loads(_get(f"http://127.0.0.1:{child.port}/api/v2/status"))
        return self.receiver.url("pager") in str(status["config"]["original"])

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
        child = self._spawn(
            "redis",
            lambda port: [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--dir",
                str(self.tmp),
                *[arg for name, value in REDIS_SETTINGS for arg in (f"--{name}", value)],
            ],
            self._preferred("redis", 6399),
            identity=self._redis_is_ours,
        )
        self.urls["redis"] = self.links["redis"] = f"redis://127.0.0.1:{child.port}/0"
        return self.urls["redis"]

    def _start_postgres(self, binaries: Binaries) -> str:
        """initdb in the temp dir, ``postgres`` in the foreground binding its own port, the
        table the app's miss path reads; returns the DSN (for environments only)."""
        cluster = self.postgres = Cluster(binaries, self.tmp / "postgres")
        cluster.init(self.tmp)
        child = self._spawn(
            "postgres",
            cluster.args,
            self._preferred("postgres", 5433),
            identity=lambda child: cluster.is_ours(child.port),
            user=binaries.user,
            stop_signal=signal.SIGINT,  # fast shutdown: SIGTERM waits for every client
        )
        cluster.create_table(child.port)
        self.urls["postgres"] = self.links["postgres"] = cluster.public_url(child.port)
        return cluster.dsn(child.port)

    @property
    def _nginx_log(self) -> Path:
        return self.tmp / "nginx" / "cache.log"

    def _start_nginx(self, app_port: int) -> Child:
        """nginx binds its own port (-g 'daemon off;' keeps the master our child)."""
        binary = self.nginx_binary
        assert binary is not None
        prefix = self.tmp / "nginx"
        (prefix / "tmp").mkdir(parents=True, exist_ok=True)
        config = prefix / "nginx.conf"

        def args(port: int) -> list[str]:
            config.write_text(nginx_config(prefix, port, app_port, self._nginx_log), "utf-8")
            return [binary, "-p", str(prefix), "-c", str(config), "-e", "stderr",
                    "-g", "daemon off;"]  # fmt: skip

        preferred = self._preferred("nginx", 8080)
        return self._spawn("nginx", args, preferred, identity=self._edge_is_ours)

    def _cdn_log_args(self) -> list[str]:
        """serve's flags for reading nginx's log (polled every second: a demo is short)."""
        return [
            f"--cdn-log=nginx:{self._nginx_log}",
            f"--cdn-state-file={self.tmp / 'cdn-log.state'}",
            "--cdn-poll-interval=1",
        ]

    def _demo_slo_file(self, user_slo: SLO) -> Path | None:
        """The given SLO file with the demo's layer objectives added, written to the temp
        dir; None (use the file as given) when it sets layer objectives of its own."""
        if user_slo.layers:
            return Path(self.options.slo) if self.options.slo else None
        source = Path(self.options.slo) if self.options.slo else default_slo_path()
        raw = yaml.safe_load(source.read_text("utf-8"))
        postgres = bool(self.options.postgres_dsn) or self.postgres_binaries is not None
        raw["layers"] = demo_layers(cdn=self.edge, postgres=postgres)
        path = self.tmp / "slo.yaml"
        path.write_text(yaml.safe_dump(raw, sort_keys=False), "utf-8")
        return path

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
            *([f"--slo={self.slo_path}"] if self.slo_path else []),
        ]
        done = subprocess.run(args, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise DemoError(f"generating the rules failed:\n{done.stderr.strip()}")
        return out

    def _start_prometheus_and_alertmanager(self, app_port: int) -> str:
        generated = self._generate_rules()
        self.receiver = WebhookReceiver(self.options.on_alert).start()
        am_config = self.tmp / "alertmanager.yml"
        am_config.write_text(yaml.safe_dump(self._alertmanager_config()), "utf-8")
        am_binary = which("prometheus-alertmanager", *_EXTRA_BIN) or which("alertmanager")
        assert am_binary is not None
        alertmanager = self._spawn(
            "alertmanager",
            lambda port: [
                am_binary,
                f"--config.file={am_config}",
                f"--storage.path={self.tmp / 'alertmanager-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",  # no HA gossip: one port less to win
            ],
            self._preferred("alertmanager", 9093),
            identity=self._alertmanager_is_ours,
        )
        am_url = self.urls["alertmanager"] = f"http://127.0.0.1:{alertmanager.port}"
        # the Debian package has no web UI: the API and amtool show the alerts
        self.links["alertmanager alerts"] = f"{am_url}/api/v2/alerts"
        amtool = which("amtool", *_EXTRA_BIN)
        if amtool:
            self.links["alertmanager CLI"] = (
                f"{os.path.basename(amtool)} --alertmanager.url={am_url} alert query"
            )

        self._write_targets(APP_JOB, app_port)
        self._write_targets(EXPORTER_JOB, None)  # filled in once the exporter holds its port
        prom_config = self.tmp / "prometheus.yml"
        prom_config.write_text(
            yaml.safe_dump(self._prometheus_config(generated, alertmanager.port), sort_keys=False),
            "utf-8",
        )
        prometheus = which("prometheus", *_EXTRA_BIN)
        assert prometheus is not None
        data_dir = self.tmp / "prometheus-data"
        child = self._spawn(
            "prometheus",
            lambda port: [
                prometheus,
                f"--config.file={prom_config}",
                f"--storage.tsdb.path={data_dir}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            self._preferred("prometheus", 9090),
            timeout=30,
            identity=self._prometheus_is_ours(data_dir),
        )
        url = self.urls["prometheus"] = f"http://127.0.0.1:{child.port}"
        alerts_page, graph_page = _prometheus_pages(url)
        self.links["prometheus alerts"] = url + alerts_page
        self.links["prometheus graph"] = url + graph_page
        self.generated = generated
        return url

    def _targets_file(self, job: str) -> Path:
        return self.tmp / "targets" / f"{job}.json"

    def _write_targets(self, job: str, port: int | None) -> None:
        """Prometheus' file service discovery: it rereads a file when it changes, so a
        target can be added once its port is known (written whole, then renamed)."""
        path = self._targets_file(job)
        path.parent.mkdir(exist_ok=True)
        targets = [{"targets": [f"127.0.0.1:{port}"]}] if port else []
        part = path.with_suffix(".part")
        part.write_text(json.dumps(targets), "utf-8")
        part.replace(path)

    def _prometheus_config(self, generated: Path, am_port: int) -> dict[str, Any]:
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
                    "file_sd_configs": [{"files": [str(self._targets_file(EXPORTER_JOB))]}],
                },
                {
                    "job_name": APP_JOB,
                    "file_sd_configs": [{"files": [str(self._targets_file(APP_JOB))]}],
                },
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


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=2) as response:
        return str(response.read().decode("utf-8", "replace"))


def _prometheus_pages(base: str) -> tuple[str, str]:
    """(alerts page, graph page) this Prometheus serves: the React UI's or the classic."""
    for alerts, graph in PROMETHEUS_PAGES:
        try:
            _get(base + alerts)
        except urllib.error.HTTPError:
            continue
        except OSError:
            break
        return alerts, graph
    return PROMETHEUS_PAGES[-1]


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise DemoError(f"--redis-url: expected redis://host:port/db, got scheme {parts.scheme!r}")
    return parts.hostname, parts.port or 6379
