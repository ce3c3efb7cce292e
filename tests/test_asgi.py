"""The ASGI middleware's contract on a FastAPI app in-process (Starlette's test
client): route templates, bounded labels, the cache mark, the 0.2 s bucket, the
Cache-Control policy and the browser layer.  The same app behind a real nginx
and uvicorn is in tests/exporter/test_edge_nginx.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import APIRouter, FastAPI, Response
from prometheus_client import CollectorRegistry, generate_latest
from starlette.testclient import TestClient

from exporter import asgi
from exporter.asgi import CacheMetricsMiddleware, mark_cached
from exporter.metrics import API_LATENCY
from exporter.paths import PathClass, PathClasses
from tests.exporter.conftest import sample


def make_app(registry: CollectorRegistry, **options: object) -> FastAPI:
    app = FastAPI()
    router = APIRouter(prefix="/api")

    @router.get("/users/{user_id}")
    async def user(user_id: str, response: Response) -> dict[str, str]:
        response.headers["ETag"] = f'"{user_id}"'
        if user_id.startswith("c"):
            mark_cached()
        return {"id": user_id}

    @router.get("/sync/{n}")
    def sync(n: int) -> dict[str, int]:
        mark_cached()  # in a worker thread with a copied context
        return {"n": n}

    @router.get("/header")
    def header() -> Response:
        return Response("{}", headers={"X-App-Cache": "hit"})

    @router.get("/own")
    def own() -> Response:
        return Response("{}", headers={"Cache-Control": "private, max-age=60", "Vary": "Cookie"})

    app.include_router(router)
    sub = FastAPI()

    @sub.get("/things/{thing}")
    def thing(thing: str) -> dict[str, str]:
        return {}

    app.mount("/t/{tenant}", sub)
    app.add_middleware(CacheMetricsMiddleware, registry=registry, **options)
    return app


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def client(registry: CollectorRegistry) -> TestClient:
    return TestClient(make_app(registry))


def text_of(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode()


def count(registry: CollectorRegistry, **labels: str) -> float | None:
    return sample(text_of(registry), "api_request_duration_seconds_count", **labels)


def test_buckets_include_200_ms_exactly() -> None:
    assert API_LATENCY.buckets is not None and 0.2 in API_LATENCY.buckets


def test_routes_are_templates_never_raw_paths(
    client: TestClient, registry: CollectorRegistry
) -> None:
    for n in range(5):
        client.get(f"/api/users/u{n}")
        client.get(f"/t/acme{n}/things/{n}")
        client.get(f"/missing/{n}")
        client.get(f"/api/users/u{n}/", follow_redirects=False)  # redirect_slashes
    text = text_of(registry)
    assert "u3" not in text and "acme" not in text and "/missing" not in text
    base = {"method": "GET", "cached": "false"}
    assert count(registry, route="/api/users/{user_id}", status_class="2xx", **base) == 5
    assert count(registry, route="/t/{tenant}/things/{thing}", status_class="2xx", **base) == 5
    assert count(registry, route="unmatched", status_class="4xx", **base) == 5
    assert count(registry, route="unmatched", status_class="3xx", **base) == 5


def test_route_labels_are_capped(
    monkeypatch: pytest.MonkeyPatch, client: TestClient, registry: CollectorRegistry
) -> None:
    monkeypatch.setattr(asgi, "MAX_ROUTES", 1)
    client.get("/api/users/u1")
    client.get("/api/sync/1")
    assert count(registry, route="other", method="GET", status_class="2xx", cached="true") == 1


def test_odd_methods_share_one_label(client: TestClient, registry: CollectorRegistry) -> None:
    client.request("PROPFIND", "/api/users/u1")
    assert count(registry, route="/api/users/{user_id}", method="OTHER", status_class="4xx",
                 cached="false") == 1  # fmt: skip


def test_the_cache_mark_from_async_sync_and_header(
    client: TestClient, registry: CollectorRegistry
) -> None:
    client.get("/api/users/c1")
    client.get("/api/sync/1")
    answer = client.get("/api/header")
    assert "x-app-cache" not in answer.headers
    for route in ("/api/users/{user_id}", "/api/sync/{n}", "/api/header"):
        assert count(registry, route=route, method="GET", status_class="2xx", cached="true") == 1


def test_policy_applied_and_conditional_requests_counted(
    client: TestClient, registry: CollectorRegistry
) -> None:
    first = client.get("/api/users/u1")
    assert first.headers["cache-control"] == "public, max-age=3600, s-maxage=3600"
    assert first.headers["vary"] == "Authorization, Accept-Language"
    again = client.get("/api/users/u1", headers={"If-None-Match": '"u1"'})
    assert (again.status_code, again.content) == (304, b"")
    assert again.headers["etag"] == '"u1"' and "content-length" not in again.headers
    stale = client.get("/api/users/u1", headers={"If-None-Match": '"old"'})
    assert stale.status_code == 200
    text = text_of(registry)
    assert sample(text, "cache_hits_total", layer="browser", type="api") == 1
    assert sample(text, "cache_misses_total", layer="browser", type="api") == 1
    assert sample(text, "cache_hits_total", layer="browser", type="asset") == 0


def test_the_apps_own_headers_are_checked_not_replaced(
    client: TestClient, registry: CollectorRegistry
) -> None:
    answer = client.get("/api/own")
    assert answer.headers["cache-control"] == "private, max-age=60"
    text = text_of(registry)
    for rule in ("public", "max_age", "s_maxage"):
        assert sample(text, "cache_policy_violations_total", type="api", rule=rule) == 1
    # Vary: Cookie lacked the ADR's names; they were added, so no violation
    assert answer.headers.get_list("vary") == ["Cookie", "Authorization, Accept-Language"]


def test_without_applying_a_missing_header_is_a_violation(registry: CollectorRegistry) -> None:
    client = TestClient(make_app(registry, apply_policy=False, answer_conditional=False))
    answer = client.get("/api/users/u1", headers={"If-None-Match": '"u1"'})
    assert answer.status_code == 200 and "cache-control" not in answer.headers
    text = text_of(registry)
    assert sample(text, "cache_policy_violations_total", type="api", rule="missing") == 1
    assert sample(text, "cache_misses_total", layer="browser", type="api") == 1


def test_custom_classes_bound_the_type_label(registry: CollectorRegistry) -> None:
    classes = PathClasses((PathClass("users", prefixes=("/api/users/",), policy="api"),))
    client = TestClient(make_app(registry, classes=classes))
    client.get("/api/users/u1", headers={"If-None-Match": '"u1"'})
    client.get("/api/sync/1", headers={"If-None-Match": '"x"'})
    text = text_of(registry)
    assert sample(text, "cache_hits_total", layer="browser", type="users") == 1
    assert sample(text, "cache_misses_total", layer="browser", type="other") == 1


def test_the_app_serves_redis_and_browser_layers_from_one_registry(
    registry: CollectorRegistry,
) -> None:
    """The cache client and the middleware share cache_hits_total in one registry
    (registering the name twice would fail at start)."""
    import fakeredis

    from exporter.client import CacheService

    cache = CacheService(fakeredis.FakeRedis(), registry=registry)
    client = TestClient(make_app(registry))
    cache.get(cache.key("user", "u1"))
    client.get("/api/users/u1", headers={"If-None-Match": '"u1"'})
    cache.close()
    text = text_of(registry)
    assert sample(text, "cache_misses_total", layer="redis", type="user") == 1
    assert sample(text, "cache_hits_total", layer="browser", type="api") == 1


def test_an_endpoint_that_raises_counts_as_5xx_under_its_route(registry: CollectorRegistry) -> None:
    app = FastAPI()

    @app.get("/api/boom/{n}")
    def boom(n: int) -> None:
        raise RuntimeError("boom")

    app.add_middleware(CacheMetricsMiddleware, registry=registry)
    client = TestClient(app, raise_server_exceptions=False)
    assert client.get("/api/boom/1").status_code == 500
    assert count(registry, route="/api/boom/{n}", method="GET", status_class="5xx",
                 cached="false") == 1  # fmt: skip


def test_if_none_match_star_is_not_a_browser_revalidation(
    client: TestClient, registry: CollectorRegistry
) -> None:
    """``*`` is a write precondition: a client sending it on every GET gets its 304s
    (as RFC 9110 says) but must not move the browser layer's hit rate."""
    for _ in range(3):
        assert client.get("/api/users/u1", headers={"If-None-Match": "*"}).status_code == 304
    text = text_of(registry)
    assert sample(text, "cache_hits_total", layer="browser", type="api") == 0
    assert sample(text, "cache_misses_total", layer="browser", type="api") == 0


def test_a_stream_that_fails_after_its_headers_counts_as_5xx(registry: CollectorRegistry) -> None:
    from fastapi.responses import StreamingResponse

    app = FastAPI()

    @app.get("/api/feed/{n}")
    def feed(n: int) -> StreamingResponse:
        def chunks():  # type: ignore[no-untyped-def]
            yield b"first,"
            raise RuntimeError("the source went away")

        return StreamingResponse(chunks())

    app.add_middleware(CacheMetricsMiddleware, registry=registry)
    client = TestClient(app, raise_server_exceptions=False)
    client.get("/api/feed/1")  # its client got a 200 and half a body
    assert count(registry, route="/api/feed/{n}", method="GET", status_class="5xx",
                 cached="false") == 1  # fmt: skip
    assert count(registry, route="/api/feed/{n}", method="GET", status_class="2xx",
                 cached="false") is None  # fmt: skip


def test_static_files_revalidate_by_etag_and_get_the_immutable_policy(
    registry: CollectorRegistry, tmp_path: Path
) -> None:
    """Starlette's StaticFiles answers If-None-Match itself; every file under the
    mount shares its template, and gets the asset class's year-long policy."""
    from fastapi.staticfiles import StaticFiles

    (tmp_path / "app.3f2a.js").write_text("console.log(1)")
    (tmp_path / "vendor.9c1b.js").write_text("console.log(2)")
    app = FastAPI()
    app.mount("/static", StaticFiles(directory=tmp_path))
    app.add_middleware(CacheMetricsMiddleware, registry=registry)
    client = TestClient(app)
    first = client.get("/static/app.3f2a.js")
    assert first.headers["cache-control"] == "public, max-age=31536000, immutable"
    again = client.get("/static/app.3f2a.js", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    client.get("/static/vendor.9c1b.js")
    text = text_of(registry)
    assert sample(text, "cache_hits_total", layer="browser", type="asset") == 1
    assert count(registry, route="/static", method="GET", status_class="2xx", cached="false") == 2
    assert "app.3f2a" not in text


def test_plain_starlette_routes_in_a_fastapi_app_are_found_by_endpoint(
    registry: CollectorRegistry,
) -> None:
    """FastAPI's router marks scope["route"] for its own routes only."""
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def plain(request: object) -> PlainTextResponse:
        return PlainTextResponse("ok")

    async def twice(request: object) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = FastAPI()
    app.router.routes.append(Route("/plain/{n}", plain))
    app.router.routes.append(Route("/a/{n}", twice))
    app.router.routes.append(Route("/b/{n}", twice))
    app.add_middleware(CacheMetricsMiddleware, registry=registry)
    client = TestClient(app)
    client.get("/plain/1")
    client.get("/a/1")  # one endpoint, two templates: cannot tell which
    assert count(registry, route="/plain/{n}", method="GET", status_class="2xx",
                 cached="false") == 1  # fmt: skip
    assert count(registry, route="unmatched", method="GET", status_class="2xx",
                 cached="false") == 1  # fmt: skip
