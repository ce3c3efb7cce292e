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
from exporter.status.alertmanager import AlertmanagerAPI, Held, HeldIndex
from exporter.status.prometheus import QUERY_ERRORS, PrometheusAPI, reason
from exporter.status.queries import (
    NOW_WINDOW,
    SERVICES_FROM,
    BurnWindow,
    Objective,
    Selection,
    hit_ratio_by_type,
    objectives,
    p99_expr,
    raw_scope,
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

#: an objective's state, worst first; :data:`exporter.status.view.STATES` defines each
#: in words, and :attr:`Row.state` is the one place that decides it
BROKEN = "broken"
AT_RISK = "at-risk"
NO_DATA = "no-data"
OK = "ok"

#: Alertmanager's part of the page: not asked (no URL), asked, or its failure
AM_NOT_CONFIGURED = ""
AM_OK = "ok"

T = TypeVar("T")


@dataclass
class Burn:
    """The burn rate over one alert tier's long window."""

    tier: BurnWindow
    value: float | None = None


@dataclass
class Row:
    """What the page shows for one objective."""

    objective: Objective
    #: the SLI over NOW_WINDOW (the sparkline's last point)
    now: float | None = None
    #: the SLI over the SLO window: what the objective is judged on
    over_window: float | None = None
    burns: list[Burn] = field(default_factory=list)
    series: list[tuple[float, float]] = field(default_factory=list)
    #: the PromQL of ``now`` and the sparkline (the page links to its graph)
    query: str = ""
    #: its own firing alerts (each may carry ``held_back``: why Alertmanager holds it)
    alerts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def budget_left(self) -> float | None:
        """Share of the window's error budget not yet spent (negative: overspent)."""
        if self.over_window is None:
            return None
        return sli.budget_left_value(self.over_window, self.objective.target)

    @property
    def state(self) -> str:
        """:data:`BROKEN` when the objective is missed over the SLO window, else
        :data:`AT_RISK` when one of its alerts fires (delivered or held back), else
        :data:`NO_DATA` when the window's SLI is unknown, else :data:`OK`."""
        if self.over_window is not None and self.over_window < self.objective.target:
            return BROKEN
        if self.alerts:
            return AT_RISK
        return NO_DATA if self.over_window is None else OK

    @property
    def broken(self) -> bool:
        return self.state == BROKEN


@dataclass
class Page:
    """Everything the page shows."""

    rows: list[Row]
    p99: float | None
    #: every firing alert; ``held_back`` (silenced, inhibited) set on those Alertmanager holds
    firing: list[dict[str, Any]]
    from_recordings: bool  # read the generator's recording rules (else raw queries)
    #: current hit rate of the key types that have no objective of their own
    other_types: dict[str, float] = field(default_factory=dict)
    #: why queries failed (a slow raw 30d query, say): their values show as missing
    failed: list[str] = field(default_factory=list)
    #: AM_NOT_CONFIGURED, AM_OK or why Alertmanager could not be read
    alertmanager: str = AM_NOT_CONFIGURED
    #: the sparklines' time span (epoch seconds)
    spark_start: float = 0.0
    spark_end: float = 0.0
    #: whose series the page shows, and the services Prometheus has recordings of
    selection: Selection | None = None
    services: list[str] = field(default_factory=list)


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


async def _held_back(alertmanager: AlertmanagerAPI | None) -> tuple[list[Held], str]:
    if alertmanager is None:
        return [], AM_NOT_CONFIGURED
    try:
        return await alertmanager.held_back(), AM_OK
    except QUERY_ERRORS as exc:
        return [], reason(exc)


async def _services(api: PrometheusAPI, recorded: set[str]) -> list[str]:
    """The services to offer; none when unknown (the page then offers no switch)."""
    if SERVICES_FROM not in recorded:
        return []
    try:
        return await api.label_values("service", SERVICES_FROM)
    except QUERY_ERRORS:
        return []


async def collect(
    api: PrometheusAPI,
    slo: SLO,
    alertmanager: AlertmanagerAPI | None = None,
    chosen: Selection | None = None,
) -> Page:
    """Query everything the page shows, concurrently, for the ``chosen`` service and
    placement (default: the SLO file's service, every placement)."""
    chosen = chosen or Selection(slo.service.name)
    recorded = await api.recorded_names()
    rows = [Row(o, burns=[Burn(b) for b in o.burns]) for o in objectives(slo, chosen)]
    end = time.time()
    start = end - SPARK_SECONDS
    window = format_duration(slo.window)
    failed: list[str] = []
    by_type_expr = hit_ratio_by_type(recorded, chosen, raw_scope(slo))
    jobs: list[Awaitable[Any]] = []
    for row in rows:
        o = row.objective
        now = row.query = o.sli_query(NOW_WINDOW, recorded)
        jobs += [
            _soft(api.scalar(now), None, failed),
            _soft(api.scalar(o.sli_query(window, recorded)), None, failed),
            _soft(api.series(now, start, end, SPARK_STEP_SECONDS), [], failed),
            *(_soft(api.scalar(o.sli_query(b.tier.window, recorded)), None, failed)
              for b in row.burns),
        ]  # fmt: skip
    jobs += [
        _soft(api.scalar(p99_expr(slo)), None, failed),
        _soft(api.firing_alerts(), [], failed),
        _soft(api.by_label(by_type_expr, "type"), {}, failed),
        _held_back(alertmanager),
        _services(api, recorded),
    ]
    results = await asyncio.gather(*jobs)
    at = 0
    for row in rows:
        row.now, row.over_window, row.series = results[at : at + 3]
        at += 3
        for burn in row.burns:
            value = results[at]
            at += 1
            if value is not None:
                burn.value = sli.burn_rate_value(value, row.objective.target)
    p99, firing, by_type, (held, am_state), services = results[at:]
    firing = [a for a in firing if chosen.matches(a["labels"])]
    index = HeldIndex(held)
    for alert in firing:
        entry = index.match(alert["labels"])
        if entry is not None:
            alert["held_back"] = entry.reason
    for row in rows:
        row.alerts = alerts_for(row.objective, firing)
    with_objective = {r.objective.type for r in rows if r.objective.kind == sli.HIT_RATE}
    others = [kt.name for kt in slo.key_types if kt.name not in with_objective]
    other_types = {t: by_type[t] for t in (*others, m.TYPE_OTHER) if t in by_type}
    return Page(
        rows, p99, firing, bool(recorded), other_types, failed, am_state, start, end,
        chosen, services,
    )  # fmt: skip
