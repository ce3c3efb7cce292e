"""The SLO status page: every objective of the SLO file at a glance.

``GET /`` renders one server-side HTML page (inline CSS and SVG, no script, no
build step, nothing fetched from the internet) from Prometheus' HTTP API: per
objective the current SLI against its target, the error budget left over the
SLO window, the burn rate, the alerts firing for it and a sparkline of the
last hours.  Prometheus is the only store; nothing is kept here.

Where the Prometheus has the generator's recording rules loaded, the page reads
them (the same series the alerts and dashboards use; cheap even over a 30-day
window); otherwise it falls back to raw expressions built from
:mod:`exporter.metrics` names and the SLO file's targets.
"""

from __future__ import annotations

import asyncio
import html
import math
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from exporter.metrics import (
    CACHE_HITS,
    CACHE_LATENCY,
    CACHE_MISSES,
    LAYER_REDIS,
    TYPE_ALL,
    TYPE_OTHER,
)
from exporter.rules.conventions import (
    ALERT_HIGH_LATENCY,
    ALERT_HIT_RATE_BURN,
    ALERT_LATENCY_BURN,
    ALERT_LOW_HIT_RATE,
    RECORD_BUDGET_REMAINING,
    SLO_HIT_RATE,
    SLO_LATENCY,
    record_hit_ratio,
    record_latency_good,
)
from exporter.slo import SLO, format_duration, parse_duration

#: rate window of the "now" value and the sparklines
NOW_WINDOW = "5m"
#: window of the displayed burn rate (the classic fast-burn long window)
BURN_WINDOW = "1h"
#: sparkline span and resolution
SPARK_SECONDS = 3 * 3600
SPARK_STEP_SECONDS = 10
QUERY_TIMEOUT_SECONDS = 5.0
REFRESH_SECONDS = 15


@dataclass(frozen=True)
class Objective:
    """One row of the page: an SLI expression template and its target."""

    key: str  # stable id (used in the HTML id)
    title: str
    target: float
    kind: str  # "hit_rate" or "latency"
    type: str  # type label the alerts carry (TYPE_ALL for overall / latency)
    sli: str  # PromQL with {w} for the range window: good / total as a ratio
    slo_label: str  # the slo label of its burn-rate alerts and budget recording
    record_labels: str  # label matchers of its recorded series
    operation: str = ""  # the operation label of its alerts (latency objectives)

    def expr(self, window: str) -> str:
        return self.sli.replace("{w}", window)

    def recorded(self, window: str) -> str:
        """The generator's recording of this SLI over ``window``."""
        namer = record_hit_ratio if self.kind == "hit_rate" else record_latency_good
        return f"{namer(parse_duration(window))}{{{self.record_labels}}}"

    def budget_recorded(self) -> str:
        return f'{RECORD_BUDGET_REMAINING}{{slo="{self.slo_label}",{self.record_labels}}}'


def _hit_ratio(selector: str) -> str:
    hits = f"sum(rate({CACHE_HITS.name}{{{selector}}}[{{w}}]))"
    misses = f"sum(rate({CACHE_MISSES.name}{{{selector}}}[{{w}}]))"
    return f"{hits} / ({hits} + {misses})"


def objectives(slo: SLO) -> list[Objective]:
    """The SLO file's objectives, in page order: overall, per type, latency."""
    layer = f'layer="{LAYER_REDIS}"'
    rows = [
        Objective(
            "hit-rate-all",
            "Hit rate, all types",
            slo.hit_rate_objective,
            "hit_rate",
            TYPE_ALL,
            _hit_ratio(layer),
            SLO_HIT_RATE,
            f'type="{TYPE_ALL}"',
        )
    ]
    for kt in slo.key_types:
        if kt.hit_rate_objective is None:
            continue
        rows.append(
            Objective(
                f"hit-rate-{kt.name}",
                f"Hit rate, {kt.name}",
                kt.hit_rate_objective,
                "hit_rate",
                kt.name,
                _hit_ratio(f'{layer},type="{kt.name}"'),
                SLO_HIT_RATE,
                f'type="{kt.name}"',
            )
        )
    lat = slo.latency
    bucket = f"{CACHE_LATENCY.name}_bucket"
    sel = f'{layer},operation="{lat.operation}"'
    le = str(lat.threshold_seconds)  # Python's repr is the exposition's (0.01)
    rows.append(
        Objective(
            f"latency-{lat.operation}",
            f"{lat.operation.upper()} within {format_duration(lat.threshold)}",
            lat.objective,
            "latency",
            TYPE_ALL,
            f'sum(rate({bucket}{{{sel},le="{le}"}}[{{w}}])) '
            f"/ sum(rate({CACHE_LATENCY.name}_count{{{sel}}}[{{w}}]))",
            SLO_LATENCY,
            f'operation="{lat.operation}"',
            lat.operation,
        )
    )
    return rows


def p99_expr(slo: SLO) -> str:
    """The latency SLO's operation p99 over :data:`NOW_WINDOW`."""
    sel = f'layer="{LAYER_REDIS}",operation="{slo.latency.operation}"'
    return (
        f"histogram_quantile(0.99, sum by (le) "
        f"(rate({CACHE_LATENCY.name}_bucket{{{sel}}}[{NOW_WINDOW}])))"
    )


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


def redact_url(url: str) -> str:
    """The URL without user:password, for display and errors."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class PrometheusAPI:
    """The three Prometheus HTTP API calls the page needs."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        response = await self.client.get(path, params=params)
        try:
            body = response.json()
        except ValueError:
            response.raise_for_status()  # not JSON: an HTTP error says more
            raise
        if response.is_error and not (isinstance(body, dict) and body.get("status") == "error"):
            response.raise_for_status()
        if not isinstance(body, dict) or "status" not in body:
            raise RuntimeError(f"{path}: not a Prometheus API answer")
        if body.get("status") != "success":
            raise RuntimeError(f"{path}: {body.get('errorType')}: {body.get('error')}")
        if not isinstance(body.get("data"), dict):
            raise RuntimeError(f"{path}: not a Prometheus API answer")
        return body["data"]

    async def scalar(self, expr: str) -> float | None:
        """First sample of an instant query; ``None`` when empty or not a number."""
        data = await self._get("/api/v1/query", {"query": expr})
        result = data.get("result") or []
        if not result:
            return None
        value = float(result[0]["value"][1])
        return None if math.isnan(value) or math.isinf(value) else value

    async def by_label(self, expr: str, label: str) -> dict[str, float]:
        """An instant vector as ``{value of label: sample}``, numbers only."""
        data = await self._get("/api/v1/query", {"query": expr})
        out = {}
        for sample in data.get("result") or []:
            value = float(sample["value"][1])
            if not (math.isnan(value) or math.isinf(value)):
                out[str(sample["metric"].get(label, ""))] = value
        return out

    async def series(
        self, expr: str, start: float, end: float, step: int
    ) -> list[tuple[float, float]]:
        data = await self._get(
            "/api/v1/query_range", {"query": expr, "start": start, "end": end, "step": step}
        )
        result = data.get("result") or []
        if not result:
            return []
        points = []
        for ts, raw in result[0]["values"]:
            value = float(raw)
            if not (math.isnan(value) or math.isinf(value)):
                points.append((float(ts), value))
        return points

    async def recorded_names(self) -> set[str]:
        """Names of the recording rules this Prometheus evaluates."""
        data = await self._get("/api/v1/rules", {"type": "record"})
        return {rule["name"] for group in data.get("groups", []) for rule in group["rules"]}

    async def firing_alerts(self) -> list[dict[str, Any]]:
        data = await self._get("/api/v1/alerts")
        return [a for a in data.get("alerts", []) if a.get("state") == "firing"]


#: the generated alerts that speak about an objective, by its kind; the operational ones
#: (RedisDown, CacheExporterDown, CacheEvictionSurge, ...) are listed, never pinned on one
OBJECTIVE_ALERTS = {
    "hit_rate": frozenset({ALERT_LOW_HIT_RATE, ALERT_HIT_RATE_BURN}),
    "latency": frozenset({ALERT_HIGH_LATENCY, ALERT_LATENCY_BURN}),
}


def _alerts_for(objective: Objective, alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """This objective's own alerts: its kind's alert names, its type or operation label."""
    found = []
    for alert in alerts:
        labels = alert.get("labels", {})
        if labels.get("alertname") not in OBJECTIVE_ALERTS[objective.kind]:
            continue
        if objective.kind == "latency":
            if labels.get("operation", objective.operation) == objective.operation:
                found.append(alert)
        elif labels.get("type", TYPE_ALL) == objective.type:
            found.append(alert)
    return found


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


#: what a failed query raises: transport errors, Prometheus' own error, or an answer
#: of an unexpected shape
QUERY_ERRORS: tuple[type[Exception], ...] = (
    httpx.HTTPError,
    RuntimeError,
    KeyError,
    ValueError,
    TypeError,
    IndexError,
    AttributeError,
)


def _reason(exc: Exception) -> str:
    return str(exc) if isinstance(exc, RuntimeError) else type(exc).__name__


async def _soft(job: Any, fallback: Any, failed: list[str]) -> Any:
    """One value's query: a failure blanks that value, not the whole page."""
    try:
        return await job
    except QUERY_ERRORS as exc:
        failed.append(_reason(exc))
        return fallback


def _hit_ratio_by_type(recorded: set[str]) -> str:
    name = record_hit_ratio(parse_duration(NOW_WINDOW))
    if name in recorded:
        return name
    layer = f'layer="{LAYER_REDIS}"'
    hits = f"sum by (type) (rate({CACHE_HITS.name}{{{layer}}}[{NOW_WINDOW}]))"
    misses = f"sum by (type) (rate({CACHE_MISSES.name}{{{layer}}}[{NOW_WINDOW}]))"
    return f"{hits} / ({hits} + {misses})"


async def collect(api: PrometheusAPI, slo: SLO) -> Page:
    """Query everything the page shows, concurrently."""
    recorded = await api.recorded_names()
    rows = [Row(o) for o in objectives(slo)]
    end = time.time()
    start = end - SPARK_SECONDS
    window = format_duration(slo.window)
    budget_recorded = RECORD_BUDGET_REMAINING in recorded

    def sli(o: Objective, w: str) -> str:
        expr = o.recorded(w)
        return expr if expr.split("{", 1)[0] in recorded else o.expr(w)

    failed: list[str] = []
    jobs: list[Any] = []
    for row in rows:
        o = row.objective
        jobs += [
            _soft(api.scalar(sli(o, NOW_WINDOW)), None, failed),
            _soft(
                api.scalar(o.budget_recorded() if budget_recorded else sli(o, window)),
                None,
                failed,
            ),
            _soft(api.scalar(sli(o, BURN_WINDOW)), None, failed),
            _soft(api.series(sli(o, NOW_WINDOW), start, end, SPARK_STEP_SECONDS), [], failed),
        ]
    jobs += [
        _soft(api.scalar(p99_expr(slo)), None, failed),
        _soft(api.firing_alerts(), [], failed),
        _soft(api.by_label(_hit_ratio_by_type(recorded), "type"), {}, failed),
    ]
    results = await asyncio.gather(*jobs)
    for i, row in enumerate(rows):
        now, budget, burn_sli, series = results[4 * i : 4 * i + 4]
        row.now, row.series = now, series
        bad_allowed = 1.0 - row.objective.target
        if budget is not None and not budget_recorded:
            budget = 1.0 - (1.0 - budget) / bad_allowed  # it was the window's SLI
        row.budget_left = budget
        if burn_sli is not None:
            row.burn_1h = (1.0 - burn_sli) / bad_allowed
    p99, firing, by_type = results[-3:]
    for row in rows:
        row.alerts = _alerts_for(row.objective, firing)
    with_objective = {r.objective.type for r in rows}
    others = [kt.name for kt in slo.key_types if kt.name not in with_objective]
    other_types = {t: by_type[t] for t in (*others, TYPE_OTHER) if t in by_type}
    return Page(rows, p99, firing, bool(recorded), other_types, failed)


# --- rendering -----------------------------------------------------------------------

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#1d2330;background:#f6f7f9}
h1{font-size:1.3rem;margin:0 0 .2rem} .sub{color:#5b6475;margin-bottom:1rem}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:1rem}
.objective{background:#fff;border-radius:8px;padding:1rem;border-left:6px solid #1e7b43}
.objective.broken{border-left-color:#d92d20;background:#fff5f4}
.objective h2{font-size:1rem;margin:0 0 .4rem}
.value{font-size:1.8rem;font-weight:600} .broken .value{color:#d92d20}
.state{float:right;font-weight:600;color:#1e7b43} .broken .state{color:#d92d20}
dl{display:grid;grid-template-columns:auto auto;gap:.1rem .8rem;margin:.5rem 0}
dt{color:#5b6475} dd{margin:0;text-align:right;font-variant-numeric:tabular-nums}
.alerts{margin:.3rem 0 0;padding-left:1.1rem;color:#d92d20}
.firing,.others{margin-top:1.5rem} th,td{text-align:left;padding:.1rem 1.2rem .1rem 0}
.error{background:#fff5f4;color:#d92d20;padding:1rem;border-radius:8px}
svg{display:block;width:100%;height:48px}
"""


def _pct(value: float | None, digits: int = 2) -> str:
    return "no data" if value is None else f"{value * 100:.{digits}f} %"


def _num(value: float | None, fmt: str) -> str:
    return "no data" if value is None else format(value, fmt)


def sparkline(points: list[tuple[float, float]], target: float, width: int = 300) -> str:
    """An inline SVG polyline of the SLI with a dashed line at the target."""
    height = 48
    if not points:
        return f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="no data"></svg>'
    t0, t1 = points[0][0], points[-1][0]
    values = [v for _, v in points] + [target]
    lo, hi = min(values), max(values)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.01, hi + 0.01

    def x(t: float) -> float:
        return float(width) if t1 == t0 else (t - t0) / (t1 - t0) * width

    def y(v: float) -> float:
        return height - 2 - (v - lo) / (hi - lo) * (height - 4)

    line = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in points)
    last_t, last_v = points[-1]
    ty = y(target)
    return (
        f'<svg viewBox="0 0 {width} {height}" preserveAspectRatio="none" role="img" '
        f'aria-label="last {SPARK_SECONDS // 3600} hours">'
        f'<line x1="0" x2="{width}" y1="{ty:.1f}" y2="{ty:.1f}" stroke="#9aa3b2" '
        f'stroke-dasharray="4 3" stroke-width="1"/>'
        f'<polyline points="{line}" fill="none" stroke="currentColor" stroke-width="1.5"/>'
        f'<circle cx="{x(last_t):.1f}" cy="{y(last_v):.1f}" r="2.5" fill="currentColor"/></svg>'
    )


def _render_row(row: Row, p99: float | None, slo: SLO) -> str:
    o = row.objective
    esc = html.escape
    cls = "objective broken" if row.broken else "objective"
    state = "BROKEN" if row.broken else "OK"
    extra = ""
    if o.kind == "latency":
        threshold_ms = slo.latency.threshold_seconds * 1000
        p99_text = "no data" if p99 is None else f"{p99 * 1000:.2f} ms"
        extra = f"<dt>p99 (target &lt; {threshold_ms:g} ms)</dt><dd class=p99>{esc(p99_text)}</dd>"
    alerts = "".join(
        f"<li>{esc(str(a['labels'].get('alertname', '?')))} "
        f"({esc(str(a['labels'].get('severity', '')))})</li>"
        for a in row.alerts
    )
    alerts_html = f'<ul class="alerts">{alerts}</ul>' if alerts else ""
    color = "#d92d20" if row.broken else "#1e7b43"
    return (
        f'<section class="{cls}" id="{esc(o.key)}" data-kind="{esc(o.kind)}">'
        f'<span class="state">{state}</span><h2>{esc(o.title)}</h2>'
        f'<div class="value">{esc(_pct(row.now))}</div>'
        f"<dl><dt>target</dt><dd>{esc(_pct(o.target, 1))}</dd>{extra}"
        f"<dt>budget left ({esc(format_duration(slo.window))})</dt>"
        f'<dd class="budget">{esc(_pct(row.budget_left, 1))}</dd>'
        f'<dt>burn rate ({BURN_WINDOW})</dt><dd class="burn">{esc(_num(row.burn_1h, ".2f"))}</dd>'
        f'<dt>alerts firing</dt><dd class="nalerts">{len(row.alerts)}</dd></dl>'
        f'<div style="color:{color}">{sparkline(row.series, o.target)}</div>{alerts_html}'
        "</section>"
    )


def render(page: Page, slo: SLO, prometheus: str) -> str:
    """The whole page."""
    esc = html.escape
    rows, p99, firing = page.rows, page.p99, page.firing
    broken = sum(row.broken for row in rows)
    summary = f"{broken} of {len(rows)} objectives broken" if broken else "all objectives met"
    firing_items = "".join(
        f"<li>{esc(str(a['labels'].get('alertname', '?')))} "
        + esc(", ".join(f"{k}={v}" for k, v in sorted(a["labels"].items()) if k != "alertname"))
        + "</li>"
        for a in firing
    )
    firing_html = f"<ul>{firing_items}</ul>" if firing else "<p>none</p>"
    other_rows = "".join(
        f'<tr><td>{esc(name)}</td><td class="rate">{esc(_pct(value))}</td></tr>'
        for name, value in page.other_types.items()
    )
    others_html = (
        f'<div class="others" id="other-types"><h2>Key types without an objective</h2>'
        f"<table><tr><th>type</th><th>hit rate ({NOW_WINDOW})</th></tr>{other_rows}</table></div>"
        if other_rows
        else ""
    )
    failed_html = (
        f'<div class="error" id="failed-queries">{len(page.failed)} '
        f"{'query' if len(page.failed) == 1 else 'queries'} failed; their values show as "
        f"missing (first: {esc(page.failed[0])}).</div>"
        if page.failed
        else ""
    )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>Cache SLO status: {esc(summary)}</title><style>{_CSS}</style></head><body>"
        f"<h1>Cache SLO status</h1><div class=sub id=summary>{esc(summary)} · SLO file "
        f"{esc(slo.source)} · from {esc(prometheus)} "
        f"({'recording rules' if page.from_recordings else 'raw queries'}) · sparklines: last "
        f"{SPARK_SECONDS // 3600} h of the {NOW_WINDOW} SLI</div>"
        f"{failed_html}"
        f'<div class="grid">{"".join(_render_row(r, p99, slo) for r in rows)}</div>'
        f"{others_html}"
        f'<div class="firing" id="firing"><h2>Alerts firing</h2>{firing_html}</div>'
        "</body></html>"
    )


def render_error(message: str) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">'
        f"<title>Cache SLO status: unavailable</title><style>{_CSS}</style></head><body>"
        f'<h1>Cache SLO status</h1><div class="error">{html.escape(message)}</div></body></html>'
    )


def build_router(prometheus_url: str, slo: SLO) -> APIRouter:
    """``GET /``: the status page, read from the Prometheus at ``prometheus_url``."""
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
                    render_error(f"Prometheus at {shown} could not be queried ({_reason(exc)})."),
                    status_code=503,
                )
        return HTMLResponse(render(page, slo, shown))

    return router
