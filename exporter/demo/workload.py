"""The demo application: a multi-tenant workload through the instrumented client.

Run as its own process (``python -m exporter.demo.workload``), as an
application would be: it reads and writes Redis only through
:class:`exporter.client.CacheService`, so everything Prometheus sees on its
``/metrics`` is the client's own instrumentation.  It serves HTTP (uvicorn, on the
socket ``--metrics-fd`` names or ``--host:--metrics-port``) through the ASGI
middleware, :mod:`exporter.demo.web`:

* ``GET /metrics`` - the application's view (client and middleware metrics);
* ``GET /healthz`` - 200 while it serves, with this run's token (``$CACHE_SLO_DEMO_TOKEN``,
  set by the demo) so the demo can tell its own app from another program on the port;
* ``POST /scenario`` with body ``healthy``, ``partial`` or ``degraded`` - switch the mix
  (degraded: sessions go cold, so the session hit rate collapses);
* the API, assets and page the demo's browsers request through nginx.

Latency is degraded outside the process, by the delaying proxy in front of Redis:
given its URL (``$CACHE_SLO_DEMO_DELAYED_URL``), the app talks to Redis through
the proxy in the ``partial`` and ``degraded`` scenarios and straight to Redis
in ``healthy`` (see :class:`Route`).

Given the demo's own PostgreSQL (``$CACHE_SLO_DEMO_POSTGRES_DSN``), a Redis miss
reads one row of its table (:class:`exporter.demo.database.SourceReader`) as
part of the simulated source's cost: the row's time comes off the source's
pause, so the request rate and the Redis calls stay as they were.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import urlsplit

import redis
from prometheus_client import CollectorRegistry

from exporter.demo.mix import HEALTHY, Chooser, Traffic
from exporter.slo import SLO, load_slo

#: scenario -> share of session reads that go cold (the proxy slows Redis on top, see
#: exporter.demo.stack.SCENARIO_LATENCY): "partial" breaks the objectives enough for the
#: threshold tickets but stays under the page burn rates; "degraded" pages
COLD_SESSION_SHARE = {"healthy": 0.0, "partial": 0.25, "degraded": 1.0}
SCENARIOS = tuple(COLD_SESSION_SHARE)
#: environment variable with the delaying proxy's URL (set by the demo; $REDIS_URL or
#: --redis-url is then Redis itself)
DELAYED_URL_ENV = "CACHE_SLO_DEMO_DELAYED_URL"
#: environment variable with the DSN of the demo's own PostgreSQL (holds its password)
POSTGRES_DSN_ENV = "CACHE_SLO_DEMO_POSTGRES_DSN"


class Source(Protocol):
    """What a miss reads besides its pause (exporter.demo.database.SourceReader)."""

    def read(self, key: str) -> bool: ...


class Route:
    """Where the app's Redis connections go: straight to Redis, or through the delaying
    proxy when a scenario wants slow calls.

    The healthy scenario skips the proxy: it is one more hop in a Python process, and on
    a busy machine its CPU queue alone pushed 5 % of healthy GETs past the 10 ms
    objective (measured: 94.7 % within 10 ms through the proxy, 99.5 % direct, same
    load).  Connections learn the address when they connect; :meth:`apply` moves them
    by closing them, and runs in the workload's own thread between requests.
    """

    def __init__(self, direct: tuple[str, int], delayed: tuple[str, int] | None) -> None:
        self.direct = direct
        self.delayed = delayed
        self.address = direct
        self._wanted = direct
        self.pool: Any = None  # the redis-py connection pool whose connections move

    def want_delay(self, slow: bool) -> None:
        """Called from any thread; takes effect at the next :meth:`apply`."""
        self._wanted = self.delayed if slow and self.delayed else self.direct

    def apply(self) -> None:
        if self._wanted != self.address:
            self.address = self._wanted
            if self.pool is not None:
                self.pool.disconnect()  # they reconnect, to the new address, when next used

    def connection_class(self, scheme: str) -> type[Any]:
        """A redis-py connection class that connects wherever this route points."""
        base: Any = redis.SSLConnection if scheme == "rediss" else redis.Connection
        route = self

        class RoutedConnection(base):  # type: ignore[misc]
            def _connect(self) -> Any:
                self.host, self.port = route.address
                return super()._connect()

        return RoutedConnection


def address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 6379


class Cache(Protocol):
    """The part of ``CacheService`` the workload uses."""

    def key(self, type_name: str, *parts: str, tenant: str | None = None) -> str: ...

    def get(self, key: str) -> Any: ...

    def get_or_compute(self, key: str, compute: Callable[[], Any]) -> Any: ...

    def set(self, key: str, value: Any, ttl: float | None = None) -> Any: ...

    def incr(self, key: str) -> Any: ...

    def close(self) -> None: ...


class Workload:
    """Issues requests at a steady rate until stopped; scenario switchable live."""

    def __init__(
        self,
        cache: Cache,
        slo: SLO,
        *,
        rate: float,
        seed: int | None = None,
        route: Route | None = None,
        database: Source | None = None,
    ) -> None:
        self.cache = cache
        self.database = database
        self.route = route
        self.slo = slo
        self.rate = rate
        self.seed = seed
        self.chooser = Chooser(HEALTHY, seed)
        self.scenario = "healthy"
        self.requests = 0
        self.stopping = threading.Event()
        self._values: dict[str, str] = {t.type: "x" * t.value_bytes for t in HEALTHY}

    def set_scenario(self, name: str) -> None:
        if name not in SCENARIOS:
            raise ValueError(f"scenario: expected one of {', '.join(SCENARIOS)}, got {name!r}")
        self.scenario = name
        self.chooser.cold_session_share = COLD_SESSION_SHARE[name]
        if self.route is not None:
            self.route.want_delay(name != "healthy")

    def _key(self, row: Traffic, tenant: int, item: int) -> str:
        kt = self.slo.key_type(row.type)
        return self.cache.key(
            row.type, f"id{item}", tenant=f"t{tenant}" if kt.tenant_scoped else None
        )

    def warm(self) -> None:
        """Preload the most popular items, as ADR-004's cache warming does on start: enough
        that a fresh demo starts near its steady hit rates instead of spending its error
        budget in the first minute.  Each TTL is spread over 50-100 % of the type's TTL:
        with one TTL the whole warm set would expire in the same second an hour later and
        the user hit rate would dip to its objective."""
        rng = random.Random(self.seed)
        for row in HEALTHY:
            kt = self.slo.key_type(row.type)
            if row.operation == "incr" or kt.tenant_scoped:
                continue
            for item in range(min(row.population, 2000)):
                ttl = kt.ttl.total_seconds() * rng.uniform(0.5, 1.0)
                self.cache.set(self._key(row, 0, item), self._values[row.type], ttl=ttl)

    def step(self) -> None:
        if self.route is not None:
            self.route.apply()
        row, tenant, item = self.chooser.next()
        key = self._key(row, tenant, item)
        value = self._values[row.type]

        def source() -> str:
            # the database / LLM call a miss costs: the real row read is part of it
            started = time.monotonic()
            if self.database is not None:
                self.database.read(key)
            rest = row.source_seconds - (time.monotonic() - started)
            if rest > 0:
                time.sleep(rest)
            return value

        if row.operation == "incr":
            self.cache.incr(key)
        elif row.operation == "get_or_compute":
            self.cache.get_or_compute(key, source)
        elif self.cache.get(key) is None:  # cache-aside: load and store on a miss
            self.cache.set(key, source())
        self.requests += 1

    def run(self) -> None:
        interval = 1.0 / self.rate if self.rate > 0 else 0.0
        next_at = time.monotonic()
        while not self.stopping.is_set():
            self.step()
            next_at += interval
            pause = next_at - time.monotonic()
            if pause > 0:
                self.stopping.wait(pause)
            elif pause < -1.0:  # fell behind (slow Redis): do not burst to catch up
                next_at = time.monotonic()


#: environment variable with the demo run's token, echoed by /healthz
TOKEN_ENV = "CACHE_SLO_DEMO_TOKEN"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m exporter.demo.workload", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        help="Redis to use (default: $REDIS_URL, else redis://127.0.0.1:6379/0)",
    )
    parser.add_argument("--slo", default=None, help="SLO file (default: the shipped one)")
    parser.add_argument("--host", default="127.0.0.1", help="address of /metrics")
    parser.add_argument("--metrics-port", type=int, default=8000)
    parser.add_argument(
        "--metrics-fd",
        type=int,
        default=None,
        help="serve /metrics on this inherited, already bound and listening socket "
        "(the demo binds it, so no other program can take the port in between)",
    )
    parser.add_argument("--rate", type=float, default=300.0, help="requests per second")
    parser.add_argument("--scenario", choices=SCENARIOS, default="healthy")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--no-warm", action="store_true", help="skip the cache warm-up")
    return parser


def _listening_socket(args: argparse.Namespace) -> socket.socket:
    """The socket ``--metrics-fd`` names (bound by the demo), else ``--host:--metrics-port``."""
    if args.metrics_fd is not None:
        sock = socket.socket(fileno=args.metrics_fd)
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((args.host, args.metrics_port))
    sock.listen(128)  # again on an inherited listening socket: harmless
    return sock


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import uvicorn  # the [server] extra: loaded when the app runs, not for `demo --help`

    from exporter.client import CacheService
    from exporter.demo.database import SourceReader
    from exporter.demo.web import build_app

    slo = load_slo(args.slo)
    registry = CollectorRegistry()
    delayed = os.environ.get(DELAYED_URL_ENV)
    route = Route(address(args.redis_url), address(delayed) if delayed else None)
    cache = CacheService.from_url(
        args.redis_url,
        slo=slo,
        registry=registry,
        connection_class=route.connection_class(urlsplit(args.redis_url).scheme),
    )
    route.pool = cache.redis.connection_pool
    dsn = os.environ.get(POSTGRES_DSN_ENV)
    database = SourceReader(dsn) if dsn else None
    workload = Workload(cache, slo, rate=args.rate, seed=args.seed, route=route, database=database)
    workload.set_scenario(args.scenario)
    app = build_app(cache, workload, registry, os.environ.get(TOKEN_ENV, ""))
    sock = _listening_socket(args)

    def stop(signum: int, frame: object) -> None:
        workload.stopping.set()

    # uvicorn takes SIGTERM/SIGINT while it serves, and re-raises the signal to these
    # handlers once it has shut down
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def drive() -> None:
        if not args.no_warm and args.scenario != "degraded":
            workload.warm()
        workload.run()

    loop = threading.Thread(target=drive, name="workload", daemon=True)
    loop.start()
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="off", http="h11", loop="asyncio"
    )
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        workload.stopping.set()
        loop.join(10)
        sock.close()
        cache.close()
        if database is not None:
            database.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
