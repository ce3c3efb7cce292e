"""Per-call metric events: queued by the hot path, applied to the metrics in batches.

Why: measured here on loopback, code that runs right after a Redis round trip
costs about five times its warm-loop time (the kernel and redis-py have just
evicted it from the CPU's caches).  Classifying the key, observing the latency
and counting the hit took ~1.2 µs in a warm loop but ~5 µs of wall time per
``get`` against a ~72 µs round trip.  So the hot path makes one call,
:attr:`Recorder.record`, that appends one tuple (latency child, seconds, keys
looked up, keys missed: see :data:`Event`) to a deque (and closes the breaker
if it had counted failures), and the classification and metric updates run
later, in bulk, for many calls:

- when the queue holds more than :data:`FLUSH_AT` events (bounded memory),
- before every collection: the client metric families call
  :meth:`exporter.client.families.ClientMetrics.flush_pending` first, so a scrape
  sees every call made before it (hits, misses and latencies are applied
  together, but each family flushes before it is read: as with
  prometheus-client, one scrape is not one atomic snapshot),
- when the service is closed, and after it is garbage collected (by the next
  flush of any service or collection).

In prometheus-client's multiprocess mode another process reads the values
from files, so a service applies each event at once (limit 0).

Thread-safe: ``deque.append`` is atomic, so the hot path takes no lock; the
rare applier holds one while it pops and applies a batch, and the metric
children it updates are thread-safe.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial
from itertools import repeat
from operator import is_not
from typing import Any

from exporter.client.breaker import CircuitBreaker
from exporter.client.families import run_queued
from exporter.client.instrumentation import Instruments, TypeChildren

log = logging.getLogger("exporter.client")

#: events queued before the pushing call applies them itself
FLUSH_AT = 256
#: queued mget events holding more keys than this are applied at once (with
#: FLUSH_AT, bounds the memory a service's queue holds)
FLUSH_KEYS = 16_384

#: (latency child, seconds, the key or keys looked up or None, those of them that
#: missed or None).  A ``get`` hit is ``(child, s, key, None)``, a miss
#: ``(child, s, key, key)``; an ``mget`` is ``(child, s, keys, missed keys)``; other
#: calls count no hit or miss: ``(child, s, None, None)``.
Event = tuple[Any, float, "str | list[str] | None", "str | list[str] | None"]


def apply(events: deque[Event], instruments: Instruments, lock: threading.Lock) -> None:
    """Apply the events queued so far (not those pushed meanwhile: no caller loops
    forever), in bulk: per-event work is C-level passes where it can be.

    The lock is held until they are applied, so a collection that flushes while
    another thread applies waits for it and sees every call made before it."""
    with lock:
        batch = list(map(deque.popleft, repeat(events, len(events))))
        if not batch:
            return
        _apply_batch(batch, instruments)


def _apply_batch(batch: list[Event], instruments: Instruments) -> None:
    """Plan, then commit; never raises (a bug here must not fail the caller's request
    or the scrape)."""
    try:
        plans = [_plan(batch, instruments)]
    except Exception:
        plans = _plan_each(batch, instruments)
    for plan in plans:
        try:
            _commit(plan)
        except Exception:  # not retried: part of it may be counted already
            log.exception("cache metrics: %d call events were not all applied", len(batch))


#: what a batch adds: latencies per histogram child, then (type, hits, misses)
Plan = tuple[list[tuple[Any, Sequence[float]]], list[tuple[TypeChildren, int, int]]]


def _plan_each(batch: list[Event], instruments: Instruments) -> list[Plan]:
    """One plan per event, so one that cannot be planned loses only itself."""
    plans = []
    for event in batch:
        try:
            plans.append(_plan([event], instruments))
        except Exception:
            log.exception("cache metrics: a call event could not be applied: %r", event[:2])
    return plans


def _plan(batch: list[Event], instruments: Instruments) -> Plan:
    """What ``batch`` adds to the metrics, computed before anything is added (so a
    failure here can be retried event by event without counting anything twice)."""
    if len(batch) == 1 and type(batch[0][2]) is not list:
        # one get or plain call: what multiprocess mode applies every time
        latency, value, key, miss = batch[0]
        if key is None:
            return [(latency, (value,))], []
        ti = instruments.classify(key) if isinstance(key, str) else instruments.other
        return [(latency, (value,))], [(ti, 0, 1) if miss is not None else (ti, 1, 0)]
    latencies, seconds, looked, missed = zip(*batch, strict=True)
    first = latencies[0]
    timings: list[tuple[Any, Sequence[float]]]
    if latencies.count(first) == len(latencies):  # the usual batch: all one operation
        timings = [(first, seconds)]
    else:
        by_child: dict[Any, list[float]] = {}
        for child, value in zip(latencies, seconds, strict=True):
            by_child.setdefault(child, []).append(value)
        timings = list(by_child.items())
    if looked.count(None) == len(looked):
        return timings, []
    lookups = column_counts(instruments, looked)
    misses = column_counts(instruments, missed)
    return timings, [(ti, n - misses.get(ti, 0), misses.get(ti, 0)) for ti, n in lookups.items()]


def _commit(plan: Plan) -> None:
    timings, counts = plan
    for child, values in timings:
        observe_many(child, values)
    for ti, hits, misses in counts:
        if hits > 0:
            ti.hits.inc(hits)
        if misses > 0:
            ti.misses.inc(misses)


def column_counts(
    instruments: Instruments, column: tuple[str | list[str] | None, ...]
) -> dict[TypeChildren, int]:
    """Per-type counts of the keys in a column of events: single keys (``get``) and
    lists of keys (``mget``), all counted in one :meth:`Instruments.type_counts` call
    (C-level passes over the keys joined, a few per key type)."""
    if list in set(map(type, column)):
        keys: list[Any] = []
        for item in column:
            if type(item) is list:
                keys.extend(item)
            elif item is not None:
                keys.append(item)
    else:
        keys = list(filter(_NOT_NONE, column))
    return instruments.type_counts(keys)


_NOT_NONE = partial(is_not, None)


def observe_many(child: Any, values: Sequence[float]) -> None:
    if len(values) == 1:
        child.observe(values[0])
        return
    bulk = getattr(child, "observe_many", None)
    if bulk is not None:
        bulk(values)
    else:  # prometheus-client's own histogram (multiprocess mode)
        for value in values:
            child.observe(value)


class Recorder:
    """One service's queue of events and the one call that records a call's outcome.

    Every successful Redis call of a service ends in exactly one call here::

        record((latency_child, seconds, looked_up, missed))   # get, get_or_compute, others
        record_mget(latency_child, seconds, keys, missed)      # mget: also bounds its keys

    It closes the breaker if it had counted failures (Redis answered), queues the
    event, and applies the queue once it holds more than :attr:`limit` events (or,
    for ``mget``, about :data:`FLUSH_KEYS` keys).  ``record`` is a closure over the
    queue, its bound and the breaker, not a method: on the hot path it replaces the
    lines each call site used to repeat, and adds no attribute lookups (see the
    module docstring for why every step after a round trip counts).  A failed call
    is recorded by :meth:`exporter.client.core.ServiceCore._failed` instead.
    """

    def __init__(
        self,
        instruments: Instruments,
        orphans: deque[Callable[[], None]],
        breaker: CircuitBreaker,
        *,
        immediate: bool,
    ) -> None:
        self.events: deque[Event] = deque()
        self.limit = 0 if immediate else FLUSH_AT
        #: keys held by queued mget events (about: threads add without a lock)
        self.queued_keys = 0
        self.breaker = breaker
        self._instruments = instruments
        self._lock = threading.Lock()
        self._orphans = orphans
        #: the hot path's one call (a weak reference to flush: no cycle through self)
        self.record = _recording(self.events, self.limit, weakref.WeakMethod(self.flush), breaker)
        # a dropped service's last events still count: handed to ``orphans`` (shared by
        # the services of one registry) and applied by the next flush or collection,
        # never here: a finalizer runs wherever the garbage collector does, maybe while
        # this thread holds a metric's lock
        leftover = partial(apply, self.events, instruments, self._lock)
        weakref.finalize(self, orphans.append, leftover).atexit = False

    def record_mget(
        self, latency: Any, seconds: float, keys: list[str], missed: list[str] | None
    ) -> None:
        """:attr:`record` for an ``mget``: the queue is also applied once its events
        hold more than :data:`FLUSH_KEYS` keys."""
        breaker = self.breaker
        if breaker.failures:
            breaker.success()
        self.events.append((latency, seconds, keys, missed))
        self.queued_keys += len(keys)
        if len(self.events) > self.limit or self.queued_keys > FLUSH_KEYS:
            self.flush()

    def flush(self) -> None:
        self.queued_keys = 0
        if not self.limit:
            self._apply_now()
            return
        apply(self.events, self._instruments, self._lock)
        if self._orphans:
            run_queued(self._orphans)

    def _apply_now(self) -> None:
        """Multiprocess mode: each event as it comes, by the shortest path (another
        process reads the values, so no collection here waits on an applier)."""
        pop = self.events.popleft
        while True:
            try:
                event = pop()
            except IndexError:
                return
            _apply_batch([event], self._instruments)


def _recording(
    events: deque[Event],
    limit: int,
    flush: weakref.WeakMethod[Callable[[], None]],
    breaker: CircuitBreaker,
) -> Callable[[Event], None]:
    """:attr:`Recorder.record`: everything it touches is a local of this closure."""
    push = events.append

    def record(event: Event) -> None:
        if breaker.failures:
            breaker.success()
        push(event)
        if len(events) > limit:
            apply_queue = flush()
            if apply_queue is not None:
                apply_queue()

    return record
