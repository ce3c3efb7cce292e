"""The SLO status page at ``GET /``: every objective of a service at a glance, each
service (``?service=``) judged by its own SLO file.

One server-side HTML page (inline CSS and SVG, no script, nothing fetched from
the internet) read from Prometheus' HTTP API on each request; Prometheus is the
only store.  The layers, each its own module so each can be tested and changed
alone:

* :mod:`.queries`: the objectives and the PromQL the page asks for (from
  :mod:`exporter.sli`, so the page shows the SLIs the alerts fire on);
* :mod:`.prometheus`: a small client of the Prometheus HTTP API;
* :mod:`.aggregate`: query everything concurrently into a :class:`~.aggregate.Page`;
* :mod:`.view`: that page as display values (texts, states, sparkline geometry);
* :mod:`.render`: the view through an autoescaping Jinja2 template;
* :mod:`.router`: the FastAPI route that ties them together.
"""

from __future__ import annotations

from exporter.status.router import build_router

__all__ = ["build_router"]
