"""Reconciling keyspace notifications with Redis' own counters (pure, single-threaded).

Notifications are fire-and-forget: some never arrive (while the subscription
is down), and the ones that do arrive can come after an ``INFO`` that already
counted their events.  :class:`EvictionLedger` turns both streams into counters
that are safe to export.  Per reason (``maxmemory``, ``expired``):

* ``cumulative``: Redis' count as we know it, summed over Redis runs: the
  first ``INFO`` sets the baseline (events before we started included), each
  later read adds its increase; a new ``run_id`` (restart) or a counter that
  went down (``CONFIG RESETSTAT``) starts a new baseline at 0 of the new run.
* ``pending``: notifications received but not yet published, in arrival
  order, per Redis run.
* ``published``: the exported counters, per key type plus ``unattributed``.

At each reconcile, ``slack = cumulative - sum(published)`` events are
unpublished; the oldest pending notifications of the current run fill it
first (moved, never copied); when ``complete`` (every notification for events
counted so far has been read, or will never come) the rest of the slack goes
to ``unattributed``.  Pending notifications of an earlier run are events that
run counted after our last ``INFO`` of it: they are published and added to
``cumulative`` (Redis counted them; a restart erased its counter).

Invariants (tested): every published counter only grows; after a complete
reconcile ``sum(published) == cumulative`` (so, until a restart, the per-type
counters sum to ``INFO``'s own counter); a type's published count never
exceeds the notifications received for it; nothing is published twice.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from exporter.metrics import TYPE_UNATTRIBUTED


@dataclass
class _Batch:
    """Consecutive notifications of one type (run-length encoded pending queue)."""

    kind: str
    count: int


class EvictionLedger:
    """Per-reason ledgers of notifications and ``INFO`` counters."""

    def __init__(self, reasons: Iterable[str], types: Iterable[str]) -> None:
        self.reasons = tuple(reasons)
        self.types = (*types, TYPE_UNATTRIBUTED)
        self.run_id: str | None = None
        self._raw: dict[str, int] = dict.fromkeys(self.reasons, 0)
        self.cumulative: dict[str, int] = dict.fromkeys(self.reasons, 0)
        self.published: dict[str, dict[str, int]] = {
            r: dict.fromkeys(self.types, 0) for r in self.reasons
        }
        # (run_id, reason) -> deque of [type, count] runs, oldest first
        self._pending: dict[tuple[str, str], deque[_Batch]] = {}
        self.received: dict[str, dict[str, int]] = {
            r: dict.fromkeys(self.types, 0) for r in self.reasons
        }

    def notify(self, run_id: str, reason: str, kind: str) -> None:
        """A notification from a subscription to Redis run ``run_id``."""
        queue = self._pending.setdefault((run_id, reason), deque())
        if queue and queue[-1].kind == kind:
            queue[-1].count += 1
        else:
            queue.append(_Batch(kind, 1))
        self.received[reason][kind] += 1

    def pending(self, reason: str) -> int:
        """Notifications of ``reason`` received but not yet published (all runs)."""
        return sum(
            batch.count for (_, r), queue in self._pending.items() if r == reason for batch in queue
        )

    def reconcile(self, run_id: str, totals: Mapping[str, int], *, complete: bool) -> None:
        """Fold one ``INFO`` read (``totals`` per reason) of run ``run_id`` into the counters."""
        restarted = self.run_id is not None and run_id != self.run_id
        for reason in self.reasons:
            raw = int(totals[reason])
            published = self.published[reason]
            for key in [k for k in self._pending if k[1] == reason and k[0] != run_id]:
                # an earlier run: first the events it counted that we had not published,
                # then the ones it counted after our last INFO of it
                self._take(key, self.cumulative[reason] - sum(published.values()))
                if key in self._pending:
                    self._publish_all(key)
            if self.run_id is None or restarted or raw < self._raw[reason]:
                increase = raw
            else:
                increase = raw - self._raw[reason]
            self._raw[reason] = raw
            self.cumulative[reason] += increase
            slack = self.cumulative[reason] - sum(published.values())
            slack -= self._take((run_id, reason), slack)
            if complete and slack > 0:
                published[TYPE_UNATTRIBUTED] += slack
        self.run_id = run_id

    def _take(self, key: tuple[str, str], wanted: int) -> int:
        """Move up to ``wanted`` of the oldest pending notifications into published."""
        queue = self._pending.get(key)
        published = self.published[key[1]]
        moved = 0
        while queue and moved < wanted:
            batch = queue[0]
            step = min(batch.count, wanted - moved)
            published[batch.kind] += step
            moved += step
            batch.count -= step
            if batch.count == 0:
                queue.popleft()
        if queue is not None and not queue:
            del self._pending[key]
        return moved

    def _publish_all(self, key: tuple[str, str]) -> None:
        """An earlier run's late events: Redis counted them, its restart erased that."""
        queue = self._pending.pop(key)
        published = self.published[key[1]]
        for batch in queue:
            published[batch.kind] += batch.count
            self.cumulative[key[1]] += batch.count

    def snapshot(self) -> dict[str, dict[str, int]]:
        """A copy of the published counters: ``{reason: {type: count}}``."""
        return {r: dict(counts) for r, counts in self.published.items()}
