"""The aggregated page as display values: texts, states, colours, sparkline geometry.

Formatting lives here, not in the template, so the template only places values
(and autoescapes them) and this module can be tested without HTML.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from exporter import sli
from exporter.redaction import redact_url
from exporter.slo import SLO, format_duration
from exporter.status.aggregate import (
    AM_NOT_CONFIGURED,
    AM_OK,
    AT_RISK,
    BROKEN,
    OK,
    SPARK_SECONDS,
    Page,
    Row,
)
from exporter.status.aggregate import NO_DATA as STATE_NO_DATA
from exporter.status.queries import NOW_WINDOW, SERVICE_VALUE

#: the signs a multiple and a negative offset are written with (not "x" and "-")
TIMES = "\N{MULTIPLICATION SIGN}"
MINUS = "\N{MINUS SIGN}"
#: page reload interval (a meta refresh: the page has no script)
REFRESH_SECONDS = 15
NO_DATA = "no data"
#: the sparkline's SVG canvas and its plot area inside it (room for the axis labels)
SPARK_WIDTH = 320
SPARK_HEIGHT = 96
PLOT_LEFT, PLOT_RIGHT, PLOT_TOP, PLOT_BOTTOM = 56, 312, 8, 76  # "100.00 %" fits left of it
#: the longest URL a link may have (a runbook annotation is anyone's text)
MAX_URL_CHARS = 2000
_LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: the most firing alerts listed at the bottom, and on one objective's card
MAX_FIRING_SHOWN = 50
MAX_CARD_ALERTS_SHOWN = 10
#: the most services offered to switch to
MAX_SERVICES_SHOWN = 50
#: the longest alert name, label value and label list shown
MAX_NAME_CHARS = 120
MAX_VALUE_CHARS = 120
MAX_LABELS_CHARS = 600
#: the largest magnitude shown in fixed notation (beyond: exponent notation)
MAX_FIXED = 1e6

#: characters never shown as they are: C0 and C1 controls (tab and newline are
#: plain white space in HTML), DEL, and the Unicode bidirectional overrides,
#: embeddings, isolates and marks, which could make text read differently from
#: what it is (U+202A-U+202E, U+2066-U+2069, U+200E, U+200F, U+061C), and the
#: line and paragraph separators
_UNSHOWN = re.compile(
    r"[\x00-\x08\x0b-\x1f\x7f-\x9f"  # C0 but tab and newline, DEL, C1
    r"\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"  # bidi marks, overrides, isolates
    r"\u2028\u2029]"  # line and paragraph separators
)


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean(text: str, limit: int | None = None) -> str:
    """``text`` safe to show: every control or bidi character written as its escape
    (``\\x1b``, ``\\u202e``), cut to ``limit`` characters with ``...``."""
    if limit is not None and len(text) > limit:
        text = text[: limit - 3] + "..."
    return _UNSHOWN.sub(_escaped, text)


@dataclass(frozen=True)
class State:
    """How one state reads, everywhere it is shown: badge, legend, summary."""

    key: str  # the CSS class and data-state value
    label: str  # the badge text
    meaning: str  # its one definition ({window} is the SLO window)


#: the states, worst first, each defined once; the legend on the page prints these
STATES = {
    BROKEN: State(BROKEN, "BROKEN", "objective missed over the last {window}: the SLI over "
                  "{window} is below the objective, the error budget is overspent"),
    AT_RISK: State(AT_RISK, "AT RISK", "objective met over {window} (or not known), but one of "
                   "its alerts is firing, delivered or held back by Alertmanager"),
    STATE_NO_DATA: State(STATE_NO_DATA, "NO DATA", "the SLI over {window} could not be read "
                         "and none of its alerts is firing"),
    OK: State(OK, "OK", "objective met over {window} and none of its alerts firing"),
}  # fmt: skip


def _number(value: float, spec: str, scale: float = 1) -> str:
    scaled = value * scale
    if not math.isfinite(scaled) or abs(scaled) >= MAX_FIXED:
        return format(scaled, ".3g")
    return format(scaled, spec)


def percent(value: float | None, digits: int = 2) -> str:
    return NO_DATA if value is None else f"{_number(value, f'.{digits}f', 100)} %"


def times(value: float) -> str:
    """A multiple, the sign first: 1.05, 14.4, 100, 1,234 (3 significant digits below 100)."""
    if not math.isfinite(value) or abs(value) >= MAX_FIXED:
        return f"{TIMES}{value:.3g}"
    return f"{TIMES}{value:,.0f}" if abs(value) >= 100 else f"{TIMES}{value:.3g}"


def budget_text(left: float | None) -> str:
    """Budget left as a share (``16.0 % left``); overspent as how many budgets were
    spent (``overspent`` and the multiple), never as a negative percentage."""
    if left is None:
        return NO_DATA
    if left < 0:
        return f"overspent {times(1 - left)}"
    return f"{percent(left, 1)} left"


def burn_text(value: float | None) -> str:
    return NO_DATA if value is None else f"{_number(value, '.2f')}{TIMES}"


def more(total: int, shown: int) -> str:
    """The line under a cut list (empty when nothing was cut)."""
    return f"{total - shown} more not shown" if total > shown else ""


# --- links ----------------------------------------------------------------------------


def link_base(url: str) -> str:
    """The Prometheus URL links may carry: no user part, query or fragment (so no
    credential ever reaches an ``href``); empty when it does not parse."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return ""
    if parts.scheme not in ("http", "https") or not host:
        return ""
    netloc = f"[{host}]" if ":" in host else host
    netloc += f":{port}" if port is not None else ""
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def graph_url(base: str, expr: str, range_input: str = "3h") -> str:
    """Prometheus' graph of ``expr`` (``/graph`` reaches the classic UI on builds
    without the new one, and the new UI's query page on Prometheus 3)."""
    if not base:
        return ""
    query = urlencode({"g0.expr": expr, "g0.tab": "0", "g0.range_input": range_input})
    return f"{base}/graph?{query}"


def _promql_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def alert_series(labels: dict[str, str]) -> str:
    """The ``ALERTS`` series of one firing alert (its labels, ``alertstate="firing"``);
    a label too long to show is left out of it too (the link stays short, and still
    finds the alert)."""
    matchers = [
        f"{k}={_promql_string(v)}"
        for k, v in sorted(labels.items())
        if _LABEL_NAME.fullmatch(k) and len(k) <= MAX_VALUE_CHARS and len(v) <= MAX_VALUE_CHARS
    ]
    return "ALERTS{" + ", ".join([*matchers, 'alertstate="firing"']) + "}"


def safe_link(url: str | None) -> str:
    """``url`` when it is an absolute http(s) URL fit for an ``href``, else empty
    (an annotation is anyone's text: no ``javascript:``, no control characters)."""
    if not url or len(url) > MAX_URL_CHARS or _UNSHOWN.search(url) or any(c.isspace() for c in url):
        return ""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    return url if parts.scheme in ("http", "https") and parts.netloc else ""


# --- sparklines -----------------------------------------------------------------------


@dataclass(frozen=True)
class Tick:
    x: str
    text: str
    anchor: str = "middle"  # the last tick ends at the plot's right edge


@dataclass(frozen=True)
class Sparkline:
    """An SVG line of the SLI on labelled axes, the objective as a dashed line."""

    width: int
    height: int
    points: str = ""
    target_y: str = ""
    target_label: str = ""
    #: the objective's label sits above its line, or below when the line is at the top
    target_dy: str = "-3"
    last_x: str = ""
    last_y: str = ""
    label: str = ""
    top_label: str = ""  # the y axis' top and bottom values
    bottom_label: str = ""
    ticks: list[Tick] = field(default_factory=list)
    left: int = PLOT_LEFT
    right: int = PLOT_RIGHT
    top: int = PLOT_TOP
    bottom: int = PLOT_BOTTOM


def _scale(values: list[float]) -> tuple[float, float]:
    """The y range: the values and the objective, padded, within [0, 1] where they are."""
    lo, hi = min(values), max(values)
    pad = max((hi - lo) * 0.1, 0.001)
    lo, hi = lo - pad, hi + pad
    if min(values) >= 0:
        lo = max(lo, 0.0)
    if max(values) <= 1:
        hi = min(hi, 1.0)
    return lo, hi


def _axis_label(value: float, span: float) -> str:
    return percent(value, 2 if span < 0.02 else 1)


def sparkline(
    points: list[tuple[float, float]], target: float, start: float = 0.0, end: float = 0.0
) -> Sparkline:
    """The SLI over [start, end] on a y axis from its lowest to its highest value (the
    objective always inside), labelled at both ends; hour ticks on the time axis."""
    width, height = SPARK_WIDTH, SPARK_HEIGHT
    label = f"last {SPARK_SECONDS // 3600} hours"
    if not points:
        return Sparkline(width, height, label="no data")
    # an SLI is a ratio: values far outside it only flatten the line, and could
    # overflow the scale
    points = [(t, min(max(v, -1e3), 1e3)) for t, v in points]
    t0, t1 = (start, end) if end > start else (points[0][0], points[-1][0])
    lo, hi = _scale([v for _, v in points] + [target])

    def x(t: float) -> float:
        if t1 == t0:
            return float(PLOT_RIGHT)
        return PLOT_LEFT + (t - t0) / (t1 - t0) * (PLOT_RIGHT - PLOT_LEFT)

    def y(v: float) -> float:
        return PLOT_BOTTOM - (v - lo) / (hi - lo) * (PLOT_BOTTOM - PLOT_TOP)

    hours = round((t1 - t0) / 3600)
    ticks = [
        Tick(f"{x(t1 - h * 3600):.1f}", f"{MINUS}{h} h" if h else "now", "middle" if h else "end")
        for h in range(hours, -1, -1)
    ] if hours >= 1 else []  # fmt: skip
    last_t, last_v = points[-1]
    return Sparkline(
        width,
        height,
        points=" ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in points),
        target_y=f"{y(target):.1f}",
        target_label=f"objective {percent(target, 1)}",
        target_dy="-3" if y(target) > PLOT_TOP + 12 else "10",
        last_x=f"{x(last_t):.1f}",
        last_y=f"{y(last_v):.1f}",
        label=label,
        top_label=_axis_label(hi, hi - lo),
        bottom_label=_axis_label(lo, hi - lo),
        ticks=ticks,
    )


# --- cards ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertLine:
    """One firing alert as the page lists it."""

    name: str
    severity: str
    labels: str  # its other labels, ``k=v, k=v``
    held_back: str  # "" when delivered (or unknown), else "silenced" / "inhibited" / both
    graph_url: str  # Prometheus' graph of its ALERTS series
    runbook_url: str  # its runbook_url annotation, when a safe http(s) link
    summary: str


def alert_line(alert: dict[str, Any], base: str) -> AlertLine:
    labels = alert.get("labels") or {}
    annotations = alert.get("annotations") or {}
    rest = ", ".join(
        f"{clean(k, MAX_VALUE_CHARS)}={clean(v, MAX_VALUE_CHARS)}"
        for k, v in sorted(labels.items())
        if k != "alertname"
    )
    return AlertLine(
        name=clean(labels.get("alertname", "?"), MAX_NAME_CHARS),
        severity=clean(labels.get("severity", ""), MAX_VALUE_CHARS),
        labels=clean(rest, MAX_LABELS_CHARS),
        held_back=str(alert.get("held_back", "")),
        graph_url=graph_url(base, alert_series(labels)) if labels else "",
        runbook_url=safe_link(annotations.get("runbook_url")),
        summary=clean(annotations.get("summary", ""), MAX_LABELS_CHARS),
    )


@dataclass(frozen=True)
class BurnCell:
    window: str  # the tier's long window ("1h")
    value: str  # the burn rate over it ("0.98" and the sign)
    fires_at: str  # the tier's factor ("14.4" and the sign)
    severity: str
    over: bool  # above the tier's factor (its alert fires if the short window agrees)


@dataclass(frozen=True)
class Card:
    """One objective's card."""

    key: str
    kind: str
    title: str
    state: State
    over_window: str  # the SLI over the SLO window
    now: str  # the SLI over NOW_WINDOW
    target: str
    budget: str
    overspent: bool
    burns: list[BurnCell]
    alerts: list[AlertLine]  # the first MAX_CARD_ALERTS_SHOWN
    alert_count: int
    held_count: int
    spark: Sparkline
    graph_url: str  # Prometheus' graph of the SLI the card shows
    #: latency objectives only: the threshold in ms and the current p99
    threshold_ms: str = ""
    p99: str = ""
    #: "N more not shown" when the card has more alerts than it lists
    more_alerts: str = ""

    @property
    def broken(self) -> bool:
        return self.state.key == BROKEN


def card(row: Row, page: Page, slo: SLO, base: str) -> Card:
    o = row.objective
    latency = o.kind == sli.LATENCY
    left = row.budget_left
    return Card(
        key=o.key,
        kind=o.kind,
        title=o.title,
        state=STATES[row.state],
        over_window=percent(row.over_window),
        now=percent(row.now),
        target=percent(o.target, 1),
        budget=budget_text(left),
        overspent=left is not None and left < 0,
        burns=[
            BurnCell(
                b.tier.window,
                burn_text(b.value),
                f"{b.tier.factor:g}{TIMES}",
                b.tier.severity,
                b.value is not None and b.value > b.tier.factor,
            )
            for b in row.burns
        ],
        alerts=[alert_line(a, base) for a in row.alerts[:MAX_CARD_ALERTS_SHOWN]],
        alert_count=len(row.alerts),
        held_count=sum(1 for a in row.alerts if a.get("held_back")),
        more_alerts=more(len(row.alerts), MAX_CARD_ALERTS_SHOWN),
        spark=sparkline(row.series, o.target, page.spark_start, page.spark_end),
        graph_url=graph_url(base, row.query) if row.query else "",
        threshold_ms=f"{slo.latency.threshold_seconds * 1000:g}" if latency else "",
        p99=(NO_DATA if page.p99 is None else f"{page.p99 * 1000:.2f} ms") if latency else "",
    )


@dataclass(frozen=True)
class PageView:
    """Everything the template places."""

    summary: str
    cards: list[Card]
    states: list[tuple[State, str]]  # each state and its definition for this SLO window
    slo_source: str
    prometheus: str
    source: str  # "recording rules" or "raw queries"
    firing: list[AlertLine]  # delivered (or delivery unknown)
    held: list[AlertLine]  # held back by Alertmanager
    alertmanager_note: str  # why delivery is unknown ("" when Alertmanager answered)
    other_types: list[tuple[str, str]]
    failed: list[str]
    spark_hours: int = SPARK_SECONDS // 3600
    now_window: str = NOW_WINDOW
    refresh: int = REFRESH_SECONDS
    window: str = ""
    #: "N more not shown" under the firing and held-back lists when they were cut
    more_firing: str = ""
    more_held: str = ""
    #: the service shown, its placement filter (``cluster=eu-1``), and every service
    #: to switch to: (name, link, is the one shown)
    service: str = ""
    placement: str = ""
    services: list[ServiceLink] = field(default_factory=list)
    #: the services found in Prometheus without an SLO file here (not judged)
    unjudged: list[str] = field(default_factory=list)


def summary(rows: list[Row]) -> str:
    """``5 objectives: 1 broken, 1 at risk, 3 ok`` (states with none left out)."""
    counts = [(STATES[k].label.lower(), sum(r.state == k for r in rows)) for k in STATES]
    parts = ", ".join(f"{n} {label}" for label, n in counts if n)
    noun = "objective" if len(rows) == 1 else "objectives"
    return f"{len(rows)} {noun}: {parts}" if rows else "no objectives"


def alertmanager_note(state: str) -> str:
    if state == AM_OK:
        return ""
    if state == AM_NOT_CONFIGURED:
        return ("No Alertmanager configured (--alertmanager-url): whether each alert is "
                "delivered or held back is not known.")  # fmt: skip
    return (
        f"Alertmanager could not be read ({clean(state, 200)}): whether each alert is "
        "delivered or held back is not known."
    )


@dataclass(frozen=True)
class ServiceLink:
    """A service the page offers: judged (an SLO file is loaded for it) or only found
    in Prometheus (listed, never judged with another service's objectives)."""

    name: str
    href: str  # "" when not judged (the page would refuse it)
    current: bool = False

    @property
    def judged(self) -> bool:
        return bool(self.href) or self.current


def services(page: Page, slo: SLO, known: Sequence[str] = ()) -> list[ServiceLink]:
    """Every service the page has an SLO file for (``known``, in the files' order; the
    current placement filter kept in the links), then the other services Prometheus has
    recordings of, unlinked; empty when there is nothing to switch to."""
    current = page.selection.service if page.selection else slo.service.name
    groups = list(page.selection.groups) if page.selection else []
    judged = list(dict.fromkeys([*known, current]))[:MAX_SERVICES_SHOWN]
    if current not in judged:
        judged.append(current)
    found = sorted({n for n in page.services if SERVICE_VALUE.fullmatch(n)} - set(judged))
    found = found[: max(MAX_SERVICES_SHOWN - len(judged), 0)]
    if len(judged) + len(found) < 2:
        return []
    links = [
        ServiceLink(n, "?" + urlencode([("service", n), *groups]), n == current) for n in judged
    ]
    return links + [ServiceLink(n, "") for n in found]


def page_view(
    page: Page,
    slo: SLO,
    prometheus: str,
    *,
    links: str | None = None,
    known: Sequence[str] = (),
) -> PageView:
    """The display values; ``prometheus`` is the URL queried (redacted here), ``links``
    the Prometheus URL the links lead to (default: ``prometheus``; stripped of any
    credential), ``known`` the services with an SLO file (the first is the default)."""
    base = link_base(prometheus if links is None else links)
    offered = services(page, slo, known)
    window = format_duration(slo.window)
    delivered = [a for a in page.firing if not a.get("held_back")]
    held = [a for a in page.firing if a.get("held_back")]
    return PageView(
        summary=summary(page.rows),
        cards=[card(row, page, slo, base) for row in page.rows],
        states=[(s, s.meaning.format(window=window)) for s in STATES.values()],
        slo_source=clean(slo.source, 200),
        prometheus=clean(redact_url(prometheus, keep_user=False), 200),
        source="recording rules" if page.from_recordings else "raw queries",
        firing=[alert_line(a, base) for a in delivered[:MAX_FIRING_SHOWN]],
        more_firing=more(len(delivered), MAX_FIRING_SHOWN),
        held=[alert_line(a, base) for a in held[:MAX_FIRING_SHOWN]],
        more_held=more(len(held), MAX_FIRING_SHOWN),
        alertmanager_note=alertmanager_note(page.alertmanager),
        other_types=[(clean(name), percent(value)) for name, value in page.other_types.items()],
        failed=[clean(reason, 200) for reason in page.failed],
        window=window,
        service=page.selection.service if page.selection else slo.service.name,
        placement=", ".join(f"{k}={v}" for k, v in page.selection.groups) if page.selection else "",
        services=[o for o in offered if o.judged],
        unjudged=[o.name for o in offered if not o.judged],
    )
