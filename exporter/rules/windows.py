"""Multi-window, multi-burn-rate tiers (Google SRE workbook, ch. 5) as a table.

The table is for a 30-day SLO window; other windows scale every duration by
``slo.window / 30d`` (a 7-day SLO pages on 14.4x over 14m and 1m10s).  ``for:``
follows Pyrra's choice per tier.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from decimal import ROUND_FLOOR, Decimal

from exporter.rules.conventions import SEVERITY_PAGE, SEVERITY_TICKET, window_name

TABLE_SLO_WINDOW = timedelta(days=30)

#: the highest error ratio a capped tier asks for: 90 % of reads missing (or slow)
#: over both windows.  A threshold at 100 % could never be exceeded, so a tier
#: whose factor x budget reaches 1 is capped here instead of silently never firing.
CAP_ERROR_RATIO = Decimal("0.9")

#: fixed window of the ADR's alerts (not budget-relative, so not SLO-window scaled)
ADR_WINDOW = timedelta(minutes=5)
#: the recorded short window every longer one is added up from
BASE_WINDOW = ADR_WINDOW
#: windows from this long on add up the BASE_WINDOW recordings (six of them at least,
#: so the base's 5-minute edge weighs little), so their cost grows with neither pods
#: nor the window; shorter ones are rates over the raw counters (a 30-day SLO reads
#: only its 5m window raw; a 7-day one also its 1m10s, 7m and 14m)
RECORDED_FROM = timedelta(minutes=30)


@dataclass(frozen=True)
class BurnTier:
    """Alert when the error ratio exceeds ``factor x budget`` over both windows."""

    severity: str
    factor: Decimal
    long: timedelta
    short: timedelta
    for_: timedelta
    #: set when the table's factor could not fire for this budget and was lowered
    capped_from: Decimal | None = None


BURN_TIERS: tuple[BurnTier, ...] = (
    BurnTier(SEVERITY_PAGE, Decimal("14.4"), timedelta(hours=1), timedelta(minutes=5),
             timedelta(minutes=2)),
    BurnTier(SEVERITY_PAGE, Decimal("6"), timedelta(hours=6), timedelta(minutes=30),
             timedelta(minutes=15)),
    BurnTier(SEVERITY_TICKET, Decimal("3"), timedelta(days=1), timedelta(hours=2),
             timedelta(hours=1)),
    BurnTier(SEVERITY_TICKET, Decimal("1"), timedelta(days=3), timedelta(hours=6),
             timedelta(hours=3)),
)  # fmt: skip


def _scale(value: timedelta, slo_window: timedelta) -> timedelta:
    ms = round(value.total_seconds() * 1000) * round(slo_window.total_seconds() * 1000)
    return timedelta(milliseconds=ms // round(TABLE_SLO_WINDOW.total_seconds() * 1000))


def scaled_tiers(slo_window: timedelta) -> tuple[BurnTier, ...]:
    """The table with every duration scaled to the SLO's window."""
    return tuple(
        replace(
            t,
            long=_scale(t.long, slo_window),
            short=_scale(t.short, slo_window),
            for_=_scale(t.for_, slo_window),
        )
        for t in BURN_TIERS
    )


def max_factor(budget: Decimal) -> Decimal:
    """Largest burn factor (one decimal, rounded down) whose threshold is CAP_ERROR_RATIO."""
    return (CAP_ERROR_RATIO / budget).quantize(Decimal("0.1"), rounding=ROUND_FLOOR)


def tiers_for_budget(
    tiers: tuple[BurnTier, ...], budget: Decimal
) -> tuple[tuple[BurnTier, ...], list[str]]:
    """Tiers that can fire for ``budget`` and notes on what was changed and why.

    A tier whose threshold ``factor x budget`` is >= 1 can never fire (the error
    ratio cannot exceed 1).  It is capped at :func:`max_factor`; a capped tier
    that would repeat the factor of an earlier tier of the same severity adds
    nothing a responder could act on and is left out.
    """
    kept: list[BurnTier] = []
    notes: list[str] = []
    cap = max_factor(budget)
    for tier in tiers:
        if tier.factor * budget < 1:
            kept.append(tier)
            continue
        label = f"{tier.severity} tier {tier.factor}x ({window_pair(tier)})"
        if any(k.severity == tier.severity and k.factor == cap for k in kept):
            notes.append(
                f"{label} left out: {tier.factor} x budget {budget} >= 1 can never fire, "
                f"and the cap {cap}x is already alerted on at this severity"
            )
            continue
        kept.append(replace(tier, factor=cap, capped_from=tier.factor))
        notes.append(
            f"{label} capped to {cap}x: {tier.factor} x budget {budget} >= 1 can never fire; "
            f"{cap}x means more than {CAP_ERROR_RATIO * 100:.0f} % bad over both windows"
        )
    return tuple(kept), notes


def window_pair(tier: BurnTier) -> str:
    return f"{window_name(tier.long)}/{window_name(tier.short)}"
