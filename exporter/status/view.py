"""The aggregated page as display values: texts, states, colours, sparkline geometry.

Formatting lives here, not in the template, so the template only places values
(and autoescapes them) and this module can be tested without HTML.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from exporter import sli
from exporter.slo import SLO, format_duration
from exporter.status.aggregate import SPARK_SECONDS, Page, Row
from exporter.status.queries import BURN_WINDOW, NOW_WINDOW

#: page reload interval (a meta refresh: the page has no script)
REFRESH_SECONDS = 15
BROKEN_COLOUR = "#d92d20"
OK_COLOUR = "#1e7b43"
SPARK_WIDTH = 300
SPARK_HEIGHT = 48
NO_DATA = "no data"
#: the most firing alerts listed at the bottom, and on one objective's card
MAX_FIRING_SHOWN = 50
MAX_CARD_ALERTS_SHOWN = 10
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


def _number(value: float, spec: str, scale: float = 1) -> str:
    scaled = value * scale
    if not math.isfinite(scaled) or abs(scaled) >= MAX_FIXED:
        return format(scaled, ".3g")
    return format(scaled, spec)


def percent(value: float | None, digits: int = 2) -> str:
    return NO_DATA if value is None else f"{_number(value, f'.{digits}f', 100)} %"


def formatted(value: float | None, spec: str) -> str:
    return NO_DATA if value is None else _number(value, spec)


def more(total: int, shown: int) -> str:
    """The line under a cut list (empty when nothing was cut)."""
    return f"{total - shown} more not shown" if total > shown else ""


@dataclass(frozen=True)
class Sparkline:
    """An SVG polyline of the SLI with a dashed line at the target (empty: no data)."""

    width: int
    height: int
    points: str = ""
    target_y: str = ""
    last_x: str = ""
    last_y: str = ""
    label: str = ""


def sparkline(points: list[tuple[float, float]], target: float) -> Sparkline:
    width, height = SPARK_WIDTH, SPARK_HEIGHT
    if not points:
        return Sparkline(width, height)
    # an SLI is a ratio: values far outside it only flatten the line, and could
    # overflow the scale
    points = [(t, min(max(v, -1e3), 1e3)) for t, v in points]
    t0, t1 = points[0][0], points[-1][0]
    values = [v for _, v in points] + [target]
    lo, hi = min(values), max(values)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.01, hi + 0.01

    def x(t: float) -> float:
        return float(width) if t1 == t0 else (t - t0) / (t1 - t0) * width

    def y(v: float) -> float:
        return height - 2 - (v - lo) / (hi - lo) * (height - 4)

    last_t, last_v = points[-1]
    return Sparkline(
        width,
        height,
        points=" ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in points),
        target_y=f"{y(target):.1f}",
        last_x=f"{x(last_t):.1f}",
        last_y=f"{y(last_v):.1f}",
        label=f"last {SPARK_SECONDS // 3600} hours",
    )


@dataclass(frozen=True)
class Card:
    """One objective's card."""

    key: str
    kind: str
    title: str
    broken: bool
    value: str
    target: str
    budget: str
    burn: str
    alert_count: int
    alerts: list[str]  # "name (severity)", the first MAX_CARD_ALERTS_SHOWN
    colour: str
    spark: Sparkline
    #: latency objectives only: the threshold in ms and the current p99
    threshold_ms: str = ""
    p99: str = ""
    #: "N more not shown" when the card has more alerts than it lists
    more_alerts: str = ""


def _alert_title(labels: dict[str, str]) -> str:
    name = clean(labels.get("alertname", "?"), MAX_NAME_CHARS)
    return f"{name} ({clean(labels.get('severity', ''), MAX_VALUE_CHARS)})"


def card(row: Row, p99: float | None, slo: SLO) -> Card:
    o = row.objective
    latency = o.kind == sli.LATENCY
    return Card(
        key=o.key,
        kind=o.kind,
        title=o.title,
        broken=row.broken,
        value=percent(row.now),
        target=percent(o.target, 1),
        budget=percent(row.budget_left, 1),
        burn=formatted(row.burn_1h, ".2f"),
        alert_count=len(row.alerts),
        alerts=[_alert_title(a["labels"]) for a in row.alerts[:MAX_CARD_ALERTS_SHOWN]],
        more_alerts=more(len(row.alerts), MAX_CARD_ALERTS_SHOWN),
        colour=BROKEN_COLOUR if row.broken else OK_COLOUR,
        spark=sparkline(row.series, o.target),
        threshold_ms=f"{slo.latency.threshold_seconds * 1000:g}" if latency else "",
        p99=(NO_DATA if p99 is None else f"{p99 * 1000:.2f} ms") if latency else "",
    )


def firing_line(alert: dict[str, Any]) -> tuple[str, str]:
    """An alert as its name and its other labels (``k=v, k=v``), each bounded and cleaned."""
    labels = alert.get("labels") or {}
    rest = ", ".join(
        f"{clean(k, MAX_VALUE_CHARS)}={clean(v, MAX_VALUE_CHARS)}"
        for k, v in sorted(labels.items())
        if k != "alertname"
    )
    return clean(labels.get("alertname", "?"), MAX_NAME_CHARS), clean(rest, MAX_LABELS_CHARS)


@dataclass(frozen=True)
class PageView:
    """Everything the template places."""

    summary: str
    cards: list[Card]
    slo_source: str
    prometheus: str
    source: str  # "recording rules" or "raw queries"
    firing: list[tuple[str, str]]
    other_types: list[tuple[str, str]]
    failed: list[str]
    spark_hours: int = SPARK_SECONDS // 3600
    now_window: str = NOW_WINDOW
    burn_window: str = BURN_WINDOW
    refresh: int = REFRESH_SECONDS
    window: str = ""
    #: "N more not shown" under the firing list when it was cut
    more_firing: str = ""


def page_view(page: Page, slo: SLO, prometheus: str) -> PageView:
    broken = sum(row.broken for row in page.rows)
    summary = f"{broken} of {len(page.rows)} objectives broken" if broken else "all objectives met"
    return PageView(
        summary=summary,
        cards=[card(row, page.p99, slo) for row in page.rows],
        slo_source=clean(slo.source, 200),
        prometheus=clean(prometheus, 200),
        source="recording rules" if page.from_recordings else "raw queries",
        firing=[firing_line(a) for a in page.firing[:MAX_FIRING_SHOWN]],
        more_firing=more(len(page.firing), MAX_FIRING_SHOWN),
        other_types=[(clean(name), percent(value)) for name, value in page.other_types.items()],
        failed=[clean(reason, 200) for reason in page.failed],
        window=format_duration(slo.window),
    )
