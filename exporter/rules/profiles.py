"""Time profiles: ``production`` as designed, ``fast`` for live end-to-end tests.

``fast`` divides every range and ``for:`` by 60 (5m -> 5s, 1h -> 1m, 30d -> 12h) so
a burn-rate page can fire within a minute or two.  Names and labels stay those of
the nominal windows, so a test of the fast rules exercises the same alerts.  Ranges
are never shorter than :attr:`Profile.min_range` so ``rate()`` still sees two
samples: run the fast rules with scrape and evaluation intervals of 1-2s.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from fractions import Fraction


@dataclass(frozen=True)
class Profile:
    name: str
    scale: Fraction
    min_range: timedelta
    min_for: timedelta

    def range(self, window: timedelta) -> timedelta:
        """Range selector length for a nominal window."""
        return max(self._scaled(window), self.min_range)

    def for_(self, duration: timedelta) -> timedelta:
        """``for:`` duration for a nominal one (0 stays 0)."""
        if duration <= timedelta(0):
            return duration
        return max(self._scaled(duration), self.min_for)

    def _scaled(self, value: timedelta) -> timedelta:
        ms = Fraction(round(value.total_seconds() * 1000)) * self.scale
        return timedelta(milliseconds=int(ms))


PRODUCTION = Profile("production", Fraction(1), timedelta(0), timedelta(0))
FAST = Profile("fast", Fraction(1, 60), timedelta(seconds=10), timedelta(seconds=5))
PROFILES = {p.name: p for p in (PRODUCTION, FAST)}
