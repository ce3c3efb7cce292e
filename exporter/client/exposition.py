"""Expose the application's ``/metrics``: ASGI or WSGI, single- or multi-process.

Under a pre-forking server (gunicorn, uvicorn workers) each worker has its own
counters; prometheus-client's multiprocess mode writes them to files in
``PROMETHEUS_MULTIPROC_DIR`` and a :class:`MultiProcessCollector` sums them at
scrape time.  When that variable is set, these apps serve a fresh registry
with that collector (never the default registry, which would count the
scraping worker twice); otherwise they serve ``registry`` (default: global).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client import make_asgi_app as _make_asgi_app
from prometheus_client import make_wsgi_app as _make_wsgi_app
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def metrics_registry(registry: CollectorRegistry | None = None) -> CollectorRegistry:
    """The registry to serve: a multiprocess aggregate when the env var is set."""
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        if not os.path.isdir(path):
            raise ValueError(
                f"{MULTIPROC_ENV}: expected an existing directory for metric files, got {path!r}"
            )
        aggregate = CollectorRegistry()
        MultiProcessCollector(aggregate, path=path)  # type: ignore[no-untyped-call]
        return aggregate
    return REGISTRY if registry is None else registry


def make_asgi_app(registry: CollectorRegistry | None = None) -> Callable[..., Any]:
    """ASGI app serving the metrics (mount it at ``/metrics``)."""
    return _make_asgi_app(metrics_registry(registry))


def make_wsgi_app(registry: CollectorRegistry | None = None) -> Callable[..., Any]:
    """WSGI app serving the metrics (mount it at ``/metrics``)."""
    return _make_wsgi_app(metrics_registry(registry))
