"""Grafana dashboards generated from the SLO file (grafanalib sources + a fixer).

:func:`render_dashboards` returns ``{file name: JSON text}``: sorted keys, two
space indent, so the same SLO file gives byte-identical files.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from grafanalib import core as g
from grafanalib._gen import DashboardEncoder

from exporter.dashboards import cache_layers, redis_server, slo_overview
from exporter.dashboards.fixer import fix_dashboard
from exporter.rules.config import RuleConfig
from exporter.slo import SLO

#: file name -> builder
DASHBOARDS: dict[str, Callable[[SLO, RuleConfig], g.Dashboard]] = {
    "cache-slo-overview.json": slo_overview.build,
    "cache-redis-server.json": redis_server.build,
    "cache-layers.json": cache_layers.build,
}


def dashboard_json(dashboard: g.Dashboard) -> dict[str, object]:
    raw = json.loads(json.dumps(dashboard.to_json_data(), cls=DashboardEncoder))
    return fix_dashboard(raw)


def render_dashboards(slo: SLO, source: str, config: RuleConfig | None = None) -> dict[str, str]:
    """Every dashboard as JSON text; ``source`` names the SLO file in the description,
    ``config`` is the rules' (their runbook URLs are the panels' runbook links)."""
    out = {}
    for name, build in DASHBOARDS.items():
        data = dashboard_json(build(slo, config or RuleConfig()))
        data["description"] = f"{data.get('description', '')} Generated from {source}; do not edit."
        out[name] = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return out
