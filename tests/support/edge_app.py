"""A small FastAPI app behind the middleware, as an application would wire it:
run by uvicorn in tests (``uvicorn tests.support.edge_app:app``).

- ``/api/items/{item_id}``: JSON with an ETag; even ids are "served from the
  cache" (``mark_cached()``), odd ids are not.
- ``/live/items/{item_id}``: the same, under a path class without a policy (nginx
  does not cache it, so conditional requests reach the app).
- ``/static/app.{digest}.js``: a hashed asset; ``/index.html``: a page.
- ``/api/bad``: an API response with its own, wrong Cache-Control (a violation).
- ``/metrics``: the app's own registry.
"""

from __future__ import annotations

from fastapi import FastAPI, Response
from fastapi.responses import HTMLResponse, PlainTextResponse
from prometheus_client import CollectorRegistry, generate_latest

from exporter.asgi import CacheMetricsMiddleware, mark_cached

registry = CollectorRegistry()
app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)


def _item(item_id: int, response: Response) -> dict[str, int]:
    response.headers["ETag"] = f'"item-{item_id}-v1"'
    if item_id % 2 == 0:
        mark_cached()
    return {"id": item_id}


@app.get("/api/items/{item_id}")
async def api_item(item_id: int, response: Response) -> dict[str, int]:
    return _item(item_id, response)


@app.get("/live/items/{item_id}")
def live_item(item_id: int, response: Response) -> dict[str, int]:  # sync: a thread
    return _item(item_id, response)


@app.get("/api/bad")
def bad() -> Response:
    return Response("{}", media_type="application/json", headers={"Cache-Control": "max-age=60"})


@app.get("/static/app.{digest}.js")
def asset(digest: str) -> Response:
    return Response("console.log(1)", media_type="text/javascript", headers={"ETag": f'"{digest}"'})


@app.get("/index.html", response_class=HTMLResponse)
def page() -> str:
    return "<!doctype html><title>edge</title>"


@app.get("/metrics")
def metrics() -> PlainTextResponse:
    return PlainTextResponse(generate_latest(registry).decode())


app.add_middleware(CacheMetricsMiddleware, registry=registry)
