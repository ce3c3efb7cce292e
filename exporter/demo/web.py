"""The demo application's HTTP side: a Starlette app behind ``CacheMetricsMiddleware``.

What an application of the platform serves, small: an API answered from the
Redis cache when it can (``mark_cached()`` then), hashed static assets and an
HTML page, each under the path class and Cache-Control policy of ADR-004, which
the middleware applies.  The demo's edge (nginx with ``proxy_cache``,
:mod:`exporter.demo.edge`) sits in front of it; the middleware records the API
latency histogram and the browser layer (conditional requests answered 304).

* ``GET /api/feature-flags/{flag_id}`` - a feature flag, read through the cache
  client (the same ``feature-flag`` keys the workload reads); a hit is marked
  ``cached="true"``, a miss loads it from the simulated source and stores it;
* ``GET /static/{name}`` - one of :data:`~exporter.demo.edge.ASSETS` (immutable for a year);
* ``GET /`` - the page (``no-cache``), with the ETag :data:`~exporter.demo.edge.PAGE_ETAG`, so a
  conditional request carrying it is answered 304 by the middleware;
* ``GET /metrics``, ``GET /healthz``, ``POST /scenario`` - as before (the
  application's metrics, this run's token, the scenario switch).
"""

from __future__ import annotations

import json
import time
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from exporter.asgi import CacheMetricsMiddleware, mark_cached
from exporter.demo.edge import ASSETS, PAGE, PAGE_ETAG

#: the key type the API's feature flags are cached under (one of ADR-004's)
FLAG_TYPE = "feature-flag"
#: the simulated source of a flag (a database read) on a cache miss
FLAG_SOURCE_SECONDS = 0.002


class FlagCache(Protocol):
    """The part of ``CacheService`` the API uses."""

    def key(self, type_name: str, *parts: str, tenant: str | None = None) -> str: ...

    def get(self, key: str) -> Any: ...

    def set(self, key: str, value: Any, ttl: float | None = None) -> Any: ...


class Scenarios(Protocol):
    def set_scenario(self, name: str) -> None: ...


def build_app(
    cache: FlagCache, workload: Scenarios, registry: CollectorRegistry, token: str = ""
) -> Starlette:
    """The app, wrapped in the middleware that records into ``registry``."""

    def feature_flag(request: Request) -> Response:  # sync: runs in a thread, as apps do
        flag_id = str(request.path_params["flag_id"])
        if not flag_id.isdigit() or len(flag_id) > 12:
            return PlainTextResponse("not found\n", status_code=404)
        key = cache.key(FLAG_TYPE, f"id{flag_id}")
        value = cache.get(key)
        if value is not None:
            mark_cached()  # answered from the Redis cache
        else:
            time.sleep(FLAG_SOURCE_SECONDS)
            value = "x" * 50
            cache.set(key, value)
        body = json.dumps({"flag": int(flag_id), "enabled": int(flag_id) % 3 != 0})
        return Response(
            body, media_type="application/json", headers={"ETag": f'"flag-{flag_id}-v1"'}
        )

    async def asset(request: Request) -> Response:
        found = ASSETS.get(str(request.path_params["name"]))
        if found is None:
            return PlainTextResponse("not found\n", status_code=404)
        ctype, body = found
        digest = str(request.path_params["name"]).split(".")[1]
        return Response(body, media_type=ctype, headers={"ETag": f'"{digest}"'})

    async def page(request: Request) -> Response:
        return Response(PAGE, media_type="text/html", headers={"ETag": PAGE_ETAG})

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse(f"ok {token}".strip() + "\n")

    async def scenario(request: Request) -> Response:
        name = (await request.body())[:64].decode("utf-8", "replace").strip()
        try:
            workload.set_scenario(name)
        except ValueError as exc:
            return PlainTextResponse(f"{exc}\n", status_code=400)
        return PlainTextResponse(f"scenario {name}\n")

    return Starlette(
        routes=[
            Route("/api/feature-flags/{flag_id}", feature_flag),
            Route("/static/{name}", asset),
            Route("/", page),
            Route("/metrics", metrics),
            Route("/healthz", healthz),
            Route("/scenario", scenario, methods=["POST"]),
        ],
        middleware=[Middleware(CacheMetricsMiddleware, registry=registry)],
    )
