"""Everything the page shows, queried concurrently and put together per objective.

A failed query blanks its own value and is listed, it does not fail the page;
only an unreachable Prometheus (the first call, the rules listing) does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from exporter import metrics as m
from exporter import sli
from exporter.rules.conventions import (
    ALERT_API_LATENCY_BURN,
    ALERT_HIGH_LATENCY,
    ALERT_HIT_RATE_BURN,
    ALERT_LATENCY_BURN,
    ALERT_LOW_HIT_RATE,
)
from exporter.slo import SLO, format_duration
from exporter.status.prometheus import QUERY_ERRORS, PrometheusAPI, reason
from exporter.status.queries import (
    BURN_WINDOW,
    NOW_WINDOW,
    Objective,
    budget_is_recorded,
    hit_ratio_by_type,
    objectives,
    p99_expr,
)

#: sparkline span and resolution
SPARK_SECONDS = 3 * 3600
SPARK_STEP_SECONDS = 10

#: the generated alerts that speak about an objective, by its kind; the operational ones
#: (RedisDown, CacheExporterDown, CacheEvictionSurge, ...) are listed, never pinned on one
OBJECTIVE_ALERTS = {
    sli.HIT_RATE: frozenset({ALERT_LOW_HIT_RATE, ALERT_HIT_RATE_BURN}),
    sli.LATENCY: frozenset({ALERT_HIGH_LATENCY, ALERT_LATENCY_BURN}),
    sli.LAYER_HIT_RATE: frozenset({ALERT_HIT_RATE_BURN}),
    sli.API_LATENCY: frozenset({ALERT_API_LATENCY_BURN}),
}

T = TypeVar("T")


@dataclass
class Row:
    """What the page shows for one objective."""

    objective: Objective
    now: float | None = None
    #: share of the window's error budget not yet spent (negative: overspent)
    budget_left: float | None = None
    burn_1h: float | None = None
    series: list[tuple[float, float]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def broken(self) -> bool:
        """Below target now, budget overspent, or an alert firing for it."""
        below = self.now is not None and self.now < self.objective.target
        spent = self.budget_left is not None and self.budget_left < 0
        return below or spent or bool(self.alerts)


@dataclass
class Page:
    """Everything the page shows."""

    rows: list[Row]
    p99: float | None
    firing: list[dict[str, Any]]
    from_recordings: bool  # read the generator's recording rules (else raw queries)
    #: current hit rate of the key types that have no objective of their own
    other_types: dict[str, float] = field(default_factory=dict)
    #: why queries failed (a slow raw 30d query, say): their values show as missing
    failed: list[str] = field(default_factory=list)


def alerts_for(objective: Objective, alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """This objective's own alerts: its kind's alert names, its type or operation label."""
    found = []
    for alert in alerts:
        labels = alert.get("labels", {})
        if labels.get("alertname") not in OBJECTIVE_ALERTS[objective.kind]:
            continue
        if objective.kind == sli.LATENCY:
            if labels.get("operation", objective.operation) == objective.operation:
                found.append(alert)
        elif objective.kind == sli.API_LATENCY:
            if labels.get("cached", objective.sli.value) == objective.sli.value:
                found.append(alert)
        # the Redis hit-rate alerts carry no layer; the other layers' carry theirs
        elif labels.get("layer", "") != objective.sli.layer:
            continue
        elif labels.get("type", m.TYPE_ALL) == objective.type:
            found.append(alert)
    return found


async def _soft(job: Awaitable[T], fallback: T, failed: list[str]) -> T:
    """One value's query: a failure blanks that value, not the whole page."""
    try:
        return await job
    except QUERY_ERRORS as exc:
        failed.append(reason(exc))
        return fallback


async def collect(api: PrometheusAPI, slo: SLO) -> Page:
    """Query everything the page shows, concurrently."""
    recorded = await api.recorded_names()
    rows = [Row(o) for o in objectives(slo)]
    end = time.time()
    start = end - SPARK_SECONDS
    window = format_duration(slo.window)
    failed: list[str] = []
    jobs: list[Awaitable[Any]] = []
    for row in rows:
        o = row.objective
        now = o.sli_query(NOW_WINDOW, recorded)
        jobs += [
            _soft(api.scalar(now), None, failed),
            _soft(api.scalar(o.budget_query(window, recorded)), None, failed),
            _soft(api.scalar(o.sli_query(BURN_WINDOW, recorded)), None, failed),
            _soft(api.series(now, start, end, SPARK_STEP_SECONDS), [], failed),
        ]
    jobs += [
        _soft(api.scalar(p99_expr(slo)), None, failed),
        _soft(api.firing_alerts(), [], failed),
        _soft(api.by_label(hit_ratio_by_type(recorded), "type"), {}, failed),
    ]
    results = await asyncio.gather(*jobs)
    for i, row in enumerate(rows):
        now_value, budget, burn_sli, row.series = results[4 * i : 4 * i + 4]
        row.now = now_value
        target = row.objective.target
        if budget is not None and not budget_is_recorded(recorded):
            budget = sli.budget_left_value(budget, target)  # it was the window's SLI
        row.budget_left = budget
        if burn_sli is not None:
            row.burn_1h = sli.burn_rate_value(burn_sli, target)
    p99, firing, by_type = results[-3:]
    for row in rows:
        row.alerts = alerts_for(row.objective, firing)
    with_objective = {r.objective.type for r in rows if r.objective.kind == sli.HIT_RATE}
    others = [kt.name for kt in slo.key_types if kt.name not in with_objective]
    other_types = {t: by_type[t] for t in (*others, m.TYPE_OTHER) if t in by_type}
    return Page(rows, p99, firing, bool(recorded), other_types, failed)
