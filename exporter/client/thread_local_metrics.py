"""Counters and histograms whose children record without a lock, into per-thread cells.

Why: the client records a latency and a hit or miss on every cache call.  A
prometheus-client child takes a lock per value it touches (a histogram
``observe`` takes two, plus several method calls): about 1.4 µs per ``get``
here, half of all our overhead against a ~75 µs loopback round trip.  These
children add into a plain list that only the calling thread writes (about
0.2-0.3 µs), so nothing can race, with or without a GIL; a scrape sums the
cells of every thread under a lock a recording thread takes only once per
child, to register its cell.

A thread's cell outlives the thread: when the thread ends, its counts move
into the child's retired totals (at the next scrape or the next new thread),
so thread churn does not grow memory, and a read never returns less than the
one before (:meth:`ThreadCells.totals`).

Same exposition as prometheus-client's ``Counter``/``Histogram`` (names, help,
labels, cumulative ``le`` buckets, ``_sum``/``_count``), minus the ``_created``
series.  Used only where prometheus-client keeps values in process memory: in
its multiprocess mode values must go to its files, so
:func:`exporter.client.families.client_metrics` uses prometheus-client's own classes
there.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import INF, floatToGoString


class _Token:
    """Lives in a thread's local storage; its finalizer reports the thread's end."""

    __slots__ = ("__weakref__",)


class ThreadCells:
    """One child's values: a list per thread, summed on read.

    Slot ``i`` of every cell means the same thing (a bucket count, the sum, ...);
    :meth:`totals` adds them up across live threads and the retired totals.
    """

    __slots__ = ("_dead", "_ids", "_live", "_lock", "_reported", "_retired", "_size", "local")

    def __init__(self, size: int) -> None:
        #: ``local.cell``: the calling thread's list (absent until its first record)
        self.local = threading.local()
        self._size = size
        self._lock = threading.Lock()
        self._live: dict[int, list[float]] = {}
        #: ids of cells whose thread ended (appended by finalizers: no lock there)
        self._dead: deque[int] = deque()
        self._retired: list[float] = [0] * size
        #: the last totals read: never report less (see :meth:`totals`)
        self._reported: list[float] = [0] * size
        self._ids = itertools.count()

    def mine(self) -> list[float]:
        """The calling thread's cell, created on its first record (the slow path, and
        the only time a recording thread takes the lock)."""
        cell: list[float] = [0] * self._size
        token = _Token()
        ident = next(self._ids)
        done = weakref.finalize(token, self._dead.append, ident)
        done.atexit = False
        with self._lock:
            self._reap()
            self._live[ident] = cell
        self.local.cell = cell
        self.local.token = token
        return cell

    def tracked_threads(self) -> int:
        """Threads whose cells are held apart (live ones, and ended ones not yet folded)."""
        with self._lock:
            self._reap()
            return len(self._live)

    def totals(self) -> list[float]:
        """Every slot summed over threads, never less than the last read.

        Floats summed in another order can round ~1 ulp lower (after an ended thread's
        cell was folded into the retired totals), and Prometheus would read any drop of
        a ``_sum`` or counter as a reset; every slot only grows, so the last value read
        is a floor."""
        with self._lock:
            self._reap()
            out = list(self._retired)
            for cell in self._live.values():
                for i, value in enumerate(cell):
                    out[i] += value
            reported = self._reported
            for i, value in enumerate(out):
                if value < reported[i]:
                    out[i] = reported[i]
            self._reported = out
            return list(out)

    def _reap(self) -> None:
        """Fold the cells of ended threads into the retired totals (lock held)."""
        while self._dead:
            cell = self._live.pop(self._dead.popleft(), None)
            if cell is not None:
                for i, value in enumerate(cell):
                    self._retired[i] += value


class CounterChild:
    """One labelled counter: ``inc`` adds to the calling thread's cell."""

    __slots__ = ("_local", "cells")

    def __init__(self) -> None:
        self.cells = ThreadCells(1)
        self._local = self.cells.local

    def inc(self, amount: float = 1) -> None:
        if amount < 0:
            raise ValueError("Counters can only be incremented by non-negative amounts.")
        try:
            cell = self._local.cell
        except AttributeError:
            cell = self.cells.mine()
        cell[0] += amount

    def get(self) -> float:
        return float(self.cells.totals()[0])


class HistogramChild:
    """One labelled histogram: per-bucket counts (not cumulative) then the sum."""

    __slots__ = ("_bounds", "_local", "cells")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self.cells = ThreadCells(len(bounds) + 1)
        self._local = self.cells.local

    def observe(self, amount: float) -> None:
        try:
            cell = self._local.cell
        except AttributeError:
            cell = self.cells.mine()
        # bisect_left: the first bucket whose upper bound is >= amount ("le")
        cell[bisect_left(self._bounds, amount)] += 1
        cell[-1] += amount

    def observe_many(self, amounts: Sequence[float]) -> None:
        """``observe`` each of ``amounts``, with C-level passes over them."""
        try:
            cell = self._local.cell
        except AttributeError:
            cell = self.cells.mine()
        ordered = sorted(amounts)
        below = 0  # how many amounts are <= the previous bound (le)
        for i, bound in enumerate(self._bounds):
            upto = bisect_right(ordered, bound)
            if upto != below:
                cell[i] += upto - below
                below = upto
                if upto == len(ordered):
                    break
        cell[-1] += sum(ordered)

    def buckets(self) -> tuple[list[tuple[str, float]], float]:
        """Cumulative ``(le, count)`` pairs and the sum."""
        totals = self.cells.totals()
        cumulative = map(float, itertools.accumulate(totals[:-1]))
        le = [floatToGoString(b) for b in self._bounds]  # type: ignore[no-untyped-call]
        return list(zip(le, cumulative, strict=True)), float(totals[-1])


class _Family(Collector):
    """A labelled metric registered on a registry as its own collector."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: CollectorRegistry | None,
        before_collect: Callable[[], None] | None = None,
    ) -> None:
        self._name = name
        #: run first by every collection (the client applies its queued events there)
        self._before_collect = before_collect
        self._documentation = documentation
        self._labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], Any] = {}
        self._lock = threading.Lock()
        if registry is not None:
            registry.register(self)

    def labels(self, *values: Any, **named: Any) -> Any:
        """The child for these label values (positional, or all by name), created once."""
        if values and named:
            raise ValueError("Can't pass both *args and **kwargs")
        if named:
            if set(named) != set(self._labelnames):
                raise ValueError(f"Incorrect label names: expected {self._labelnames}")
            values = tuple(named[name] for name in self._labelnames)
        if len(values) != len(self._labelnames):
            raise ValueError(f"Incorrect label count: expected {len(self._labelnames)}")
        key = tuple(str(v) for v in values)
        with self._lock:
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = self._new_child()
            return child

    def _items(self) -> list[tuple[tuple[str, ...], Any]]:
        if self._before_collect is not None:
            self._before_collect()
        with self._lock:
            return list(self._children.items())

    def _new_child(self) -> Any:
        raise NotImplementedError

    def _family(self) -> Metric:
        raise NotImplementedError

    def collect(self) -> Iterable[Metric]:
        raise NotImplementedError

    def describe(self) -> Iterable[Metric]:
        return [self._family()]


class ThreadLocalCounter(_Family):
    """Drop-in for a labelled prometheus-client ``Counter`` (``labels()`` then ``inc``)."""

    def _new_child(self) -> CounterChild:
        return CounterChild()

    def _family(self) -> CounterMetricFamily:
        return CounterMetricFamily(self._name, self._documentation, labels=self._labelnames)

    def collect(self) -> Iterable[Metric]:
        family = self._family()
        for values, child in self._items():
            family.add_metric(values, child.get())
        return [family]


class ThreadLocalHistogram(_Family):
    """Drop-in for a labelled prometheus-client ``Histogram`` (``labels()`` then ``observe``)."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        buckets: Sequence[float],
        registry: CollectorRegistry | None,
        before_collect: Callable[[], None] | None = None,
    ) -> None:
        bounds = [float(b) for b in buckets]
        if bounds != sorted(bounds):
            raise ValueError("Buckets not in sorted order")
        if not bounds or bounds[-1] != INF:
            bounds.append(INF)
        if len(bounds) < 2:
            raise ValueError("Must have at least two buckets")
        self._bounds = tuple(bounds)
        super().__init__(name, documentation, labelnames, registry, before_collect)

    def _new_child(self) -> HistogramChild:
        return HistogramChild(self._bounds)

    def _family(self) -> HistogramMetricFamily:
        return HistogramMetricFamily(self._name, self._documentation, labels=self._labelnames)

    def collect(self) -> Iterable[Metric]:
        family = self._family()
        for values, child in self._items():
            buckets, total = child.buckets()
            family.add_metric(list(values), buckets, total)
        return [family]
