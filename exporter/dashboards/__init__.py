"""Grafana dashboards (grafanalib sources) generated from the SLO file."""

from __future__ import annotations

from exporter.slo import SLO


def render_dashboards(slo: SLO, source: str) -> dict[str, str]:
    return {}
