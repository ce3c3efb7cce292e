"""``GET /``: the status page, read from Prometheus on each request."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AsyncExitStack
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from exporter.redaction import redact_url
from exporter.slo import SLO
from exporter.status.aggregate import collect
from exporter.status.alertmanager import AlertmanagerAPI
from exporter.status.prometheus import QUERY_ERRORS, PrometheusAPI, reason
from exporter.status.queries import SelectionError, by_service, choose
from exporter.status.render import render, render_error

QUERY_TIMEOUT_SECONDS = 5.0


def build_router(
    prometheus_url: str,
    slos: SLO | Sequence[SLO],
    alertmanager_url: str | None = None,
    *,
    prometheus_links_url: str | None = None,
) -> APIRouter:
    """The status page of each SLO file's service (the first one's by default, each
    judged by its own objectives and window), read from the Prometheus at
    ``prometheus_url``; its links lead to ``prometheus_links_url`` (default: the same).
    With ``alertmanager_url``, alerts Alertmanager holds back show so.  Two files of
    one service raise :class:`~exporter.slo.SLOError`."""
    router = APIRouter()
    known = by_service(slos)
    shown = redact_url(prometheus_url, keep_user=False)  # a lone user part may be a token
    # credentials travel as an Authorization header, never in a URL httpx could log
    base_url, auth = _split_auth(prometheus_url.rstrip("/"))
    am = _split_auth(alertmanager_url.rstrip("/")) if alertmanager_url else None

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def status_page(request: Request) -> HTMLResponse:
        try:  # ?service= and the SLO file's grouping labels (?cluster=) narrow the series
            slo, chosen = choose(known, request.query_params)
        except SelectionError as exc:
            return HTMLResponse(render_error(str(exc)), status_code=400)
        async with AsyncExitStack() as stack:
            client = await stack.enter_async_context(
                httpx.AsyncClient(base_url=base_url, auth=auth, timeout=QUERY_TIMEOUT_SECONDS)
            )
            alertmanager = None
            if am is not None:
                am_client = await stack.enter_async_context(
                    httpx.AsyncClient(base_url=am[0], auth=am[1], timeout=QUERY_TIMEOUT_SECONDS)
                )
                alertmanager = AlertmanagerAPI(am_client)
            try:  # the rules listing tells whether Prometheus answers at all
                page = await collect(PrometheusAPI(client), slo, alertmanager, chosen)
            except QUERY_ERRORS as exc:
                return HTMLResponse(
                    render_error(f"Prometheus at {shown} could not be queried ({reason(exc)})."),
                    status_code=503,
                )
        links = prometheus_links_url or prometheus_url
        return HTMLResponse(render(page, slo, prometheus_url, links=links, known=list(known)))

    return router


def _split_auth(url: str) -> tuple[str, httpx.BasicAuth | None]:
    """``http://user:pw@host:9090`` -> (``http://host:9090``, basic auth of user, pw)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    netloc = parts.netloc.rsplit("@", 1)[1]
    auth = httpx.BasicAuth(unquote(parts.username or ""), unquote(parts.password or ""))
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)), auth
