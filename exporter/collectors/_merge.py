"""One family per metric name, whoever yields it.

``cache_hits_total`` comes from PostgreSQL (``layer="postgres"``) and from the CDN
logs (``layer="cdn"``); a registry may hold a family name once, and an exposition
with the name twice is refused by Prometheus' parser, so the server registers the
collectors that share names through one :class:`Merged`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client.core import Metric
from prometheus_client.registry import Collector


class Merged(Collector):
    """Collectors whose families share names, exposed as one family per name."""

    def __init__(self, collectors: Iterable[Collector]) -> None:
        self._collectors = list(collectors)

    def describe(self) -> Iterator[Metric]:
        seen: set[str] = set()
        for collector in self._collectors:
            for family in collector.describe():  # type: ignore[attr-defined]
                if family.name not in seen:
                    seen.add(family.name)
                    yield family

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        for collector in self._collectors:
            for family in collector.collect():
                found = merged.get(family.name)
                if found is None:
                    merged[family.name] = family
                else:
                    found.samples.extend(family.samples)
        yield from merged.values()
