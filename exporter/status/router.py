"""``GET /``: the status page, read from Prometheus on each request."""

from __future__ import annotations

import httpx
from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from exporter.redaction import redact_url
from exporter.slo import SLO
from exporter.status.aggregate import collect
from exporter.status.prometheus import QUERY_ERRORS, PrometheusAPI, reason
from exporter.status.render import render, render_error

QUERY_TIMEOUT_SECONDS = 5.0


def build_router(prometheus_url: str, slo: SLO) -> APIRouter:
    """The status page of ``slo``, read from the Prometheus at ``prometheus_url``."""
    router = APIRouter()
    shown = redact_url(prometheus_url)

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def status_page() -> HTMLResponse:
        async with httpx.AsyncClient(
            base_url=prometheus_url.rstrip("/"), timeout=QUERY_TIMEOUT_SECONDS
        ) as client:
            try:  # the rules listing tells whether Prometheus answers at all
                page = await collect(PrometheusAPI(client), slo)
            except QUERY_ERRORS as exc:
                return HTMLResponse(
                    render_error(f"Prometheus at {shown} could not be queried ({reason(exc)})."),
                    status_code=503,
                )
        return HTMLResponse(render(page, slo, shown))

    return router
