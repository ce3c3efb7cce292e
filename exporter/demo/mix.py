"""The synthetic traffic mix: which key types a SaaS reads, how often, how big.

A table, because the world here is one: each row is a key type of ADR-004 with
its share of requests, how many distinct items exist, how skewed their
popularity is (Zipf exponent), the size of a cached value and how long the
simulated source (database, LLM) takes on a miss.  Populations and skews are
chosen so the steady-state hit rates land near the ADR's targets (sessions
~98 %, users ~81 %, LLM responses ~67 %, overall ~85 %).  A finite population
alone would not: once it is cached every read hits, so each type also reads a
share of never-seen items (new sessions, users, prompts) that keeps its miss
floor where real traffic has it.

Value sizes are kept small on purpose: every miss writes a new key and the
long-TTL types (sessions 24h, LLM responses 7d) only grow while the demo runs,
so a healthy hour at 300 requests/s writes about 60 MB (measured: 61 MB, 23 %
of the cap) - far below the demo Redis' ``maxmemory`` (see
``exporter.demo.stack.REDIS_SETTINGS``).  With the
former realistic sizes (2-20 kB) the demo Redis filled its cap within minutes,
``allkeys-lru`` then evicted the long tail of LLM responses and users, and the
hit rates drifted under their objectives (LLM responses to ~57 % against 60 %).
Hit rates depend on which keys are present, not on how big their values are.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Traffic:
    """One key type's share of the workload."""

    type: str
    weight: float  # share of requests
    population: int  # distinct items (per tenant for tenant-scoped types)
    zipf_s: float  # popularity skew; higher = a few items get most reads
    value_bytes: int  # size of a cached value
    source_seconds: float  # simulated miss penalty (database query, LLM call)
    #: "get" = cache-aside (get, on a miss load and set), "get_or_compute" =
    #: read-through for heavy computations, "incr" = counters (rate limits)
    operation: str = "get"
    #: share of reads for items never seen before (new sessions, users, prompts): the
    #: steady miss floor that keeps the hit rate near its target once the cache is warm
    new_share: float = 0.0


#: the healthy mix (ADR-004's key types in realistic proportions and sizes)
HEALTHY: tuple[Traffic, ...] = (
    Traffic("session", 0.30, 1_000, 1.5, 300, 0.002, new_share=0.02),
    Traffic("user", 0.15, 4_000, 1.1, 500, 0.004, new_share=0.14),
    Traffic("organization", 0.08, 5, 1.0, 800, 0.004, new_share=0.14),
    Traffic("permissions", 0.10, 4_000, 1.1, 200, 0.003, new_share=0.3),
    Traffic("api-key", 0.05, 300, 1.2, 100, 0.002, new_share=0.2),
    Traffic("rate-limit", 0.12, 10, 1.0, 16, 0.0, operation="incr"),
    Traffic(
        "llm-response", 0.08, 20_000, 1.0, 600, 0.030, operation="get_or_compute", new_share=0.15
    ),
    Traffic("analytics", 0.05, 3, 1.0, 2_000, 0.010, operation="get_or_compute"),
    Traffic("feature-flag", 0.07, 40, 1.0, 50, 0.001),
)

#: number of tenants; tenants themselves are Zipf-popular (a few big customers)
TENANTS = 200
TENANT_ZIPF_S = 1.2
#: the degraded scenario's session ids: so many that almost every read is cold
COLD_SESSION_POPULATION = 1_000_000_000


class Zipf:
    """Draw ranks 0..n-1 with probability proportional to 1/(rank+1)**s."""

    def __init__(self, n: int, s: float) -> None:
        self.n = n
        self._cum = list(itertools.accumulate(1.0 / (rank + 1) ** s for rank in range(n)))

    def draw(self, rng: random.Random) -> int:
        return bisect.bisect_left(self._cum, rng.random() * self._cum[-1])


class Chooser:
    """Picks (traffic row, tenant index, item index) for the next request."""

    def __init__(self, mix: Sequence[Traffic], seed: int | None = None) -> None:
        self.mix = tuple(mix)
        self.rng = random.Random(seed)
        self._cum_weights = list(itertools.accumulate(t.weight for t in self.mix))
        self._items = {t.type: Zipf(t.population, t.zipf_s) for t in self.mix}
        self._tenants = Zipf(TENANTS, TENANT_ZIPF_S)
        #: share of session reads that go to never-seen sessions (0: none, 1: all)
        self.cold_session_share = 0.0

    def next(self) -> tuple[Traffic, int, int]:
        row = self.rng.choices(self.mix, cum_weights=self._cum_weights)[0]
        tenant = self._tenants.draw(self.rng)
        new = row.new_share
        if row.type == "session":
            new = 1.0 - (1.0 - new) * (1.0 - self.cold_session_share)
        if new > 0 and self.rng.random() < new:
            return row, tenant, self.rng.randrange(COLD_SESSION_POPULATION)
        return row, tenant, self._items[row.type].draw(self.rng)
