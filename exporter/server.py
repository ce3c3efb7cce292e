"""``cache-slo-exporter serve``: the Prometheus scrape target.

``GET /metrics`` (Prometheus text, or OpenMetrics when the scraper asks),
``GET /healthz`` (the process is alive), ``GET /readyz`` (Redis answers; 503
otherwise) and ``GET /scrape?target=redis://...`` (the INFO collector against
another Redis, fresh registry per request, as the Go redis_exporter's and the
blackbox exporter's multi-target pattern).  ``/scrape`` connects wherever it
is told to, so by default it reaches only the Redis of ``--redis-url``:
``--scrape-allow`` names what else it may reach (``none`` turns it off; see
:mod:`exporter.scrape_targets`), and basic auth or a bearer token limits who may
ask.  Scrape work runs in the thread pool, bounded by socket timeouts, so a slow
Redis never blocks the server.  A target's first ``/scrape`` also starts its own
keyspace sampler and eviction tracker (per-type families), stopped once it goes
unscraped for ``--scrape-target-idle`` and capped by ``--scrape-max-targets``
(:mod:`exporter.collectors.targets`).  With ``--cluster``, ``/metrics`` covers
every node of the Redis Cluster that ``--redis-url`` belongs to
(:mod:`exporter.collectors.cluster`).

Series carry ``instance`` = the Redis host:port; scrape this exporter with
``honor_labels: true`` so Prometheus keeps it (otherwise it becomes
``exported_instance`` and ``instance`` is the exporter's address).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import logging
import secrets
import sys
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from exporter import config
from exporter.collectors._merge import Merged
from exporter.collectors.cluster import ClusterCollector
from exporter.collectors.evictions import EvictionTracker
from exporter.collectors.health import WorkerHealth
from exporter.collectors.keyspace_sampler import KeyspaceSampler
from exporter.collectors.redis_info import ErrorCounts, RedisInfoCollector, error_class
from exporter.collectors.targets import TargetWorkers, Worker
from exporter.config import ConfigError, Settings
from exporter.http_limits import ACCEPT_BATCH, ConnectionLimits, connection_cap
from exporter.logs import protect_root_handlers, uvicorn_log_config
from exporter.redaction import redact_dsn
from exporter.scrape_targets import Target, allowed, parse_target
from exporter.slo import SLOError
from exporter.text_format import choose_encoder

if TYPE_CHECKING:
    from exporter.collectors.cdn_logs import CdnLogCollector

log = logging.getLogger(__name__)

#: /scrape requests served at once (each may hold a thread for its whole deadline; the
#: thread pool they share with /metrics has 40)
SCRAPE_CONCURRENCY = 8

#: shares of the scrape deadline for the collectors that wait on I/O; they run one
#: after another, so the shares add up to less than 1 (the rest is rendering)
DEADLINE_SHARES = {"redis_info": 0.25, "evictions": 0.25, "postgres": 0.4}


def _budget(settings: Settings, collector: str) -> float:
    return settings.scrape_timeout * DEADLINE_SHARES[collector]


def _redis_timeout(settings: Settings) -> float:
    return _budget(settings, "redis_info")


def _background_collectors(settings: Settings) -> list[KeyspaceSampler | EvictionTracker]:
    """The sampler (key counts and sizes per type) and the eviction tracker (evictions
    and expirations per type): both run threads, started and stopped with the app."""
    url, kwargs = settings.redis_target
    return [
        KeyspaceSampler(
            url, settings.slo, instance=settings.instance, redis_kwargs=kwargs, **settings.sampler
        ),
        EvictionTracker(
            url,
            settings.slo,
            instance=settings.instance,
            redis_kwargs=kwargs,
            configure_notifications=settings.configure_notifications,
            # it waits for a notification barrier at scrape time: its share of the deadline
            collect_timeout=_budget(settings, "evictions"),
        ),
    ]


def _target_workers(settings: Settings, target: Target) -> list[Worker]:
    """A /scrape target's sampler and eviction tracker, as the main Redis has them."""
    return [
        KeyspaceSampler(
            target.url,
            settings.slo,
            instance=target.address,
            redis_kwargs=target.credentials(),
            **settings.sampler,
        ),
        EvictionTracker(
            target.url,
            settings.slo,
            instance=target.address,
            redis_kwargs=target.credentials(),
            configure_notifications=settings.configure_notifications,
            collect_timeout=_budget(settings, "evictions"),
        ),
    ]


def _main_collectors(
    settings: Settings, background: bool
) -> tuple[RedisInfoCollector | ClusterCollector, list[KeyspaceSampler | EvictionTracker]]:
    """What /metrics serves about --redis-url: one node's INFO and its workers, or with
    --cluster every node's (the cluster collector runs its own workers)."""
    url, kwargs = settings.redis_target
    if settings.cluster:
        cluster = ClusterCollector(
            url,
            settings.slo,
            instance=settings.instance,
            timeout=_redis_timeout(settings),
            redis_kwargs=kwargs,
            refresh=settings.cluster_refresh,
            background=background,
            sample_replicas=settings.cluster_sample_replicas,
            sampler=dict(settings.sampler),
            configure_notifications=settings.configure_notifications,
            evictions_timeout=_budget(settings, "evictions"),
        )
        return cluster, []
    info = RedisInfoCollector(
        url, instance=settings.instance, timeout=_redis_timeout(settings), redis_kwargs=kwargs
    )
    return info, _background_collectors(settings) if background else []


def _authorized(settings: Settings, request: Request) -> bool:
    """Whether ``request`` carries the configured basic-auth or bearer credentials
    (always, when none are configured); compared in constant time."""
    if not settings.auth_required:
        return True
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    token = (settings.bearer_token or "").encode()
    if (
        settings.bearer_token is not None
        and scheme.lower() == "bearer"
        and secrets.compare_digest(credentials.strip().encode(), token)
    ):
        return True
    if settings.basic_auth_user is not None and scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        user, _, password = decoded.partition(":")
        user_ok = secrets.compare_digest(user.encode(), settings.basic_auth_user.encode())
        expected = (settings.basic_auth_password or "").encode()
        if secrets.compare_digest(password.encode(), expected) and user_ok:
            return True
    return False


def _check_auth(settings: Settings) -> Callable[[Request], None]:
    """Raise 401 (with the challenge) unless ``request`` carries the configured
    basic-auth or bearer credentials, when some are configured."""

    def check(request: Request) -> None:
        if not _authorized(settings, request):
            challenge = "Bearer" if settings.bearer_token is not None else 'Basic realm="metrics"'
            raise HTTPException(401, "authentication required", {"WWW-Authenticate": challenge})

    return check


async def _http_error(request: Request, exc: Exception) -> Response:
    """An HTTP error as ``{"detail": ...}`` JSON, the body FastAPI gave it (and 404s)."""
    assert isinstance(exc, HTTPException)
    return JSONResponse({"detail": exc.detail}, exc.status_code, exc.headers)


def _status_app(settings: Settings, check: Callable[[Request], None]) -> ASGIApp:
    """The SLO status page (a FastAPI router, imported only when it is served)."""
    from fastapi import Depends, FastAPI

    from exporter.status import build_router

    status = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, redirect_slashes=False)
    router = build_router(
        settings.prometheus_url or "",
        settings.service_slos,
        settings.alertmanager_url,
        prometheus_links_url=settings.prometheus_external_url,
    )
    status.include_router(router, dependencies=[Depends(check)])
    return status


def _exposition(registry: CollectorRegistry, accept: str) -> Response:
    encoder, content_type = choose_encoder(accept)
    return Response(encoder(registry), media_type=content_type)


class _MetricsFastPath:
    """``GET /metrics`` answered in the thread pool straight from ``render``.

    What the scraper waits for most often should cost the least: FastAPI's routing,
    dependency solving and response classes cost about as much per request as
    encoding the page.  Everything else, including an unauthorized ``/metrics``
    (which gets the route's 401 and challenge), goes on to the app unchanged."""

    def __init__(
        self, app: ASGIApp, *, settings: Settings, render: Callable[[str], tuple[bytes, str]]
    ) -> None:
        self.app = app
        self.settings = settings
        self.render = render

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/metrics" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if not _authorized(self.settings, request):
            await self.app(scope, receive, send)
            return
        body, content_type = await run_in_threadpool(self.render, request.headers.get("accept", ""))
        headers = [
            (b"content-length", str(len(body)).encode("latin-1")),
            (b"content-type", content_type.encode("latin-1")),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


_INDEX_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>cache-slo-exporter</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 2em auto">
<h1>cache-slo-exporter</h1>
<ul>
<li><a href="/metrics">/metrics</a>: the Prometheus scrape target</li>
<li><a href="/healthz">/healthz</a>: the process is alive</li>
<li><a href="/readyz">/readyz</a>: Redis answers</li>
<li>/scrape?target=redis://host:port: scrape another Redis (multi-target)</li>
</ul>
<p>The SLO status page is served here when the exporter is started with
<code>--prometheus-url</code> (or <code>PROMETHEUS_URL</code>) pointing at the
Prometheus that evaluates the generated rules.</p>
</body></html>
"""


def create_app(settings: Settings, *, background: bool = True) -> Starlette:
    """The exporter's app; ``background=False`` leaves out the sampler threads."""
    info, extra = _main_collectors(settings, background)
    targets: TargetWorkers[Target] = TargetWorkers(
        lambda target: _target_workers(settings, target),
        max_targets=settings.scrape_max_targets,
        idle_timeout=settings.scrape_target_idle,
    )
    registry = CollectorRegistry()
    registry.register(info)
    ProcessCollector(registry=registry)
    #: collectors that both yield cache_hits_total/cache_misses_total (other layers)
    layers: list[Collector] = []
    if settings.postgres_dsn:
        from exporter.collectors.postgres import PostgresCollector

        layers.append(
            PostgresCollector(settings.postgres_dsn, timeout=_budget(settings, "postgres"))
        )
    workers: list[KeyspaceSampler | EvictionTracker | CdnLogCollector] = []
    if settings.cdn_logs and settings.cdn_state_file is not None:
        from exporter.collectors.cdn_logs import CdnLogCollector, Source

        cdn = CdnLogCollector(
            [Source(fmt, path) for fmt, path in settings.cdn_logs],  # type: ignore[arg-type]
            settings.cdn_state_file,
            settings.path_classes,
            instance=settings.instance,
            interval=settings.cdn_poll_interval,
        )
        layers.append(cdn)
        workers.append(cdn)
    if layers:  # one family per name in a registry
        registry.register(Merged(layers) if len(layers) > 1 else layers[0])
    if background and settings.scrape_allow != ():
        registry.register(targets)
    for collector in extra:
        registry.register(collector)
    workers = [*extra, *workers] if background else []
    cluster = info if isinstance(info, ClusterCollector) else None
    if workers or (cluster and background):
        # one family per name in a registry: every worker's health is served together,
        # the cluster's as its nodes come and go
        registry.register(WorkerHealth(lambda: [*workers, *(cluster.workers() if cluster else ())]))

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        if cluster is not None:
            cluster.start()  # the topology, and the workers of every node
        for collector in workers:
            collector.start()
        if background:
            targets.start()
        try:
            yield
        finally:
            targets.stop()
            for collector in workers:
                collector.stop()
            info.close()

    check = _check_auth(settings)
    routes: list[BaseRoute] = []

    def index(request: Request) -> Response:
        """Where a person lands: what is served here, and how to get the status page."""
        check(request)
        return HTMLResponse(_INDEX_HTML)

    if not settings.prometheus_url:  # else the SLO status page, mounted last
        routes.append(Route("/", index, methods=["GET"]))

    #: started at the top of a scrape: their round trips overlap the INFO collector's
    trackers = [c for c in extra if isinstance(c, EvictionTracker)]

    def render(accept: str) -> tuple[bytes, str]:
        for tracker in trackers:
            tracker.prepare()
        encoder, content_type = choose_encoder(accept)
        return encoder(registry), content_type

    def metrics(request: Request) -> Response:
        check(request)
        body, content_type = render(request.headers.get("accept", ""))
        return Response(body, media_type=content_type)

    routes.append(Route("/metrics", metrics, methods=["GET"]))

    def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    def readyz(request: Request) -> JSONResponse:
        """Public for probes, but only the verdict: which Redis, as whom, and why it
        failed are shown to an authorized caller alone (when auth is configured)."""
        try:
            info.ping()
        except Exception as exc:  # any failure means "not ready"; the class says which
            body = {"status": "unavailable", "redis": settings.redis_display}
            details = {**body, "error": error_class(exc)}
            code = 503
        else:
            details = {"status": "ready", "redis": settings.redis_display}
            code = 200
        if not _authorized(settings, request):
            details = {"status": details["status"]}
        return JSONResponse(details, status_code=code)

    routes += [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
    ]

    #: failed /scrape requests per target, so the counter outlives each request's collector
    scrape_errors = ErrorCounts()
    scrape_slots = threading.BoundedSemaphore(SCRAPE_CONCURRENCY)
    #: deny by default: without --scrape-allow, only the Redis this exporter watches
    allow = (
        (settings.instance,)  # host:port or socket path of --redis-url
        if settings.scrape_allow is None
        else settings.scrape_allow
    )
    why_refused = (
        "unset: only the Redis of --redis-url"
        if settings.scrape_allow is None
        else "none: /scrape is off"
        if not allow
        else "no pattern names it"
    )

    def scrape(request: Request) -> Response:
        check(request)
        target = request.query_params.get("target", "")
        if not target:  # as FastAPI answered a missing required parameter
            raise HTTPException(422, "query parameter 'target': required, a redis:// URL")
        try:
            config.parse_redis_url(target)
            checked = parse_target(target)
        except ValueError as exc:
            raise HTTPException(400, f"query parameter 'target': expected {exc}") from None
        if not allowed(checked, allow):
            raise HTTPException(403, f"target not allowed by --scrape-allow ({why_refused})")
        # sync routes share one thread pool with /metrics: a flood of slow targets must
        # not take every thread, so /scrape holds at most a few at once
        if not scrape_slots.acquire(blocking=False):
            raise HTTPException(503, "too many /scrape requests in flight", {"Retry-After": "1"})
        try:
            return _scrape_one(request, checked)
        finally:
            scrape_slots.release()

    routes.append(Route("/scrape", scrape, methods=["GET"]))

    def _scrape_one(request: Request, checked: Target) -> Response:
        collector = RedisInfoCollector(
            checked.url,  # built from the checked values, never from the request's text
            instance=checked.address,
            timeout=_redis_timeout(settings),
            redis_kwargs=checked.credentials(),
            errors=scrape_errors,
        )
        one_off = CollectorRegistry()
        one_off.register(collector)
        if background:  # the per-type families, from workers that outlive this request
            one_off.register(targets.view(checked, checked.address))
        try:
            return _exposition(one_off, request.headers.get("accept", ""))
        finally:
            collector.close()

    if settings.prometheus_url:  # the SLO status page at GET /
        routes.append(Route("/", _status_app(settings, check)))  # its one route, "/"
    # Starlette, not FastAPI: /metrics needs no validation or schema, and FastAPI with
    # pydantic was 15 MB of the process (the status page brings it only when served);
    # no route list is served (no /docs or /openapi.json), and no 307 to "/metrics/"
    # built from the request's Host header (an open redirect)
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error},
        # an authorized GET /metrics skips even Starlette's routing
        middleware=[Middleware(_MetricsFastPath, settings=settings, render=render)],
    )
    app.router.redirect_slashes = False
    app.state.settings = settings
    app.state.registry = registry
    return app


# --- the `serve` command -----------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    """Resolve settings (exit 2 on a bad one), then serve until SIGINT/SIGTERM."""
    import uvicorn

    try:
        settings = config.resolve(args)
    except (ConfigError, SLOError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    protect_root_handlers()  # every library's records (httpx logs URLs with their users)
    limits = ConnectionLimits(
        max_connections=connection_cap(settings.max_connections, config.FD_RESERVE),
        header_timeout=settings.request_header_timeout,
    )
    log.info(
        "serving on %s:%d for Redis %s%s (scrape timeout %gs; at most %d connections, "
        "%gs to send a request head)",
        settings.listen_host,
        settings.listen_port,
        settings.redis_display,
        f", PostgreSQL {redact_dsn(settings.postgres_dsn)}" if settings.postgres_dsn else "",
        settings.scrape_timeout,
        limits.max_connections,
        limits.header_timeout,
    )
    uvicorn.run(
        create_app(settings),
        host=settings.listen_host,
        port=settings.listen_port,
        log_level=settings.log_level.lower(),
        log_config=uvicorn_log_config(uvicorn.config.LOGGING_CONFIG),
        http=limits.protocol(),
        backlog=ACCEPT_BATCH,
        timeout_graceful_shutdown=5,
    )
    return 0
