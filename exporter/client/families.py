"""The client's metric objects: the five ``cache_*`` families of one registry.

:mod:`exporter.metrics` names them (names, help, labels, buckets); this module
builds them, once per registry, with the lock-free children of
:mod:`exporter.client.thread_local_metrics` (or prometheus-client's own in its
multiprocess mode), and applies the services' queued call events
(:mod:`exporter.client.recorder`) before every collection.
"""

from __future__ import annotations

import threading
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, values

from exporter.client.thread_local_metrics import ThreadLocalCounter, ThreadLocalHistogram
from exporter.metrics import (
    CACHE_COMPUTE,
    CACHE_ERRORS,
    CACHE_HITS,
    CACHE_LATENCY,
    CACHE_MISSES,
    MetricSpec,
)


class ClientMetrics:
    """The client's metric objects, registered once per registry.

    Several :class:`~exporter.client.CacheService` instances in one process
    share these (registering a name twice on one registry is an error).  They
    record into per-thread cells without a lock
    (:mod:`exporter.client.thread_local_metrics`), except in prometheus-client's
    multiprocess mode, whose values must go to its files: there they are
    prometheus-client's own ``Counter``/``Histogram``.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        #: services' queues of per-call events (:mod:`exporter.client.recorder`),
        #: applied before every collection
        self._pending: weakref.WeakSet[Any] = weakref.WeakSet()
        self._pending_lock = threading.Lock()
        #: what garbage-collected services left queued (see the recorder)
        self.orphans: deque[Callable[[], None]] = deque()
        self.immediate = in_multiprocess_mode()
        hook = {} if self.immediate else {"before_collect": self.flush_pending}
        counter: Any = Counter if self.immediate else ThreadLocalCounter
        histogram: Any = Histogram if self.immediate else ThreadLocalHistogram

        def count(spec: MetricSpec) -> Any:
            return counter(spec.family, spec.help, spec.labels, registry=registry, **hook)

        def timing(spec: MetricSpec) -> Any:
            buckets = spec.buckets or ()
            return histogram(
                spec.family, spec.help, spec.labels, buckets=buckets, registry=registry, **hook
            )

        self.hits = count(CACHE_HITS)
        self.misses = count(CACHE_MISSES)
        self.latency = timing(CACHE_LATENCY)
        self.errors = count(CACHE_ERRORS)
        self.compute = timing(CACHE_COMPUTE)

    def track(self, recorder: Any) -> None:
        """Apply ``recorder``'s queued events before each collection while it lives."""
        with self._pending_lock:  # a WeakSet must not grow while it is copied
            self._pending.add(recorder)

    def flush_pending(self) -> None:
        with self._pending_lock:
            recorders = list(self._pending)
        for recorder in recorders:
            recorder.flush()
        run_queued(self.orphans)  # left by services garbage collected since


def run_queued(calls: deque[Callable[[], None]]) -> None:
    """Run and drop each queued call (from any thread: each runs once)."""
    while True:
        try:
            call = calls.popleft()
        except IndexError:
            return
        call()


def in_multiprocess_mode() -> bool:
    """Whether prometheus-client keeps values in files (``PROMETHEUS_MULTIPROC_DIR`` was
    set when it was imported): its value class then is not the in-memory one."""
    return values.ValueClass is not values.MutexValue


_client_metrics: weakref.WeakKeyDictionary[CollectorRegistry, ClientMetrics] = (
    weakref.WeakKeyDictionary()
)
_client_metrics_lock = threading.Lock()


def client_metrics(registry: CollectorRegistry | None = None) -> ClientMetrics:
    """Return the client metrics registered on ``registry`` (default: the global one)."""
    reg = REGISTRY if registry is None else registry
    with _client_metrics_lock:
        found = _client_metrics.get(reg)
        if found is None:
            found = ClientMetrics(reg)
            _client_metrics[reg] = found
        return found
