"""Background workers of ``/scrape`` targets: started on first scrape, stopped when idle.

``/scrape?target=`` builds a fresh INFO collector per request, but the per-type
families (``cache_keys``, ``cache_size_bytes``, ``cache_evictions_total``) come
from workers that must outlive a request: a keyspace sampler, whose cycle
takes seconds to minutes, and an eviction tracker, whose subscription must be
up before the events it counts.  :class:`TargetWorkers` keeps them per target:

* created and started on a target's first scrape (that scrape has no estimate
  yet: the sampler's first cycle is still running);
* stopped once a target goes unscraped for ``idle_timeout`` seconds (a reaper
  thread checks a few times per timeout), which frees its slot; a later scrape
  starts it again (counters then restart, which Prometheus reads as a reset);
* at most ``max_targets`` at once: a new target beyond that is refused workers
  (its INFO view is still served), counted in
  ``cache_exporter_scrape_targets_refused_total`` and logged once per streak,
  so a fleet larger than the cap, or a caller inventing targets, cannot grow
  threads and connections without bound.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from exporter import metrics
from exporter.collectors.health import CollectorHealth, RepeatFilter, WorkerHealth

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)

#: the families on the exporter's own /metrics, in collect()'s value order
_FAMILIES = (
    metrics.SCRAPE_TARGETS_LIVE,
    metrics.SCRAPE_TARGETS_MAX,
    metrics.SCRAPE_TARGETS_REFUSED,
    metrics.SCRAPE_TARGETS_EXPIRED,
)
#: longest wait of the reaper between checks (it also wakes at idle_timeout / 4)
MAX_REAP_INTERVAL = 30.0


class Worker(Protocol):
    """A background collector (the keyspace sampler, the eviction tracker)."""

    @property
    def health(self) -> CollectorHealth: ...

    @property
    def running(self) -> bool: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def collect(self) -> Iterable[Metric]: ...


@dataclass
class _Entry:
    workers: Sequence[Worker]
    last_used: float


class TargetWorkers(Collector, Generic[K]):
    """Per-target background workers, bounded in number and stopped when idle."""

    def __init__(
        self,
        make: Callable[[K], Sequence[Worker]],
        *,
        max_targets: int,
        idle_timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_targets < 1 or idle_timeout <= 0:
            raise ValueError("TargetWorkers: expected max_targets >= 1 and idle_timeout > 0")
        self._make = make
        self.max_targets = max_targets
        self.idle_timeout = idle_timeout
        self._clock = clock
        self._live: dict[K, _Entry] = {}
        self._lock = threading.Lock()
        self._refused = 0
        self._expired = 0
        self._stop = threading.Event()
        self._reaper: threading.Thread | None = None
        self._repeats = RepeatFilter()

    def __len__(self) -> int:
        return len(self._live)

    def acquire(self, key: K) -> Sequence[Worker] | None:
        """The workers of ``key``, started now if it had none; None when the cap refuses
        a new target.  Every call counts as a scrape (the idle clock restarts)."""
        now = self._clock()
        with self._lock:
            entry = self._live.get(key)
            if entry is not None:
                entry.last_used = now
                return entry.workers
            idle = self._take_idle(now)
            if len(self._live) >= self.max_targets:
                self._refused += 1
                refused = True
            else:
                workers = self._make(key)
                for worker in workers:
                    worker.start()
                self._live[key] = _Entry(workers, now)
                refused = False
        self._stop_all(idle)
        if refused:
            log.log(
                self._repeats.level("full"),
                "/scrape: %d targets already have background workers (--scrape-max-targets); "
                "a new target is served its INFO view only",
                self.max_targets,
            )
            return None
        self._repeats.reset()
        return workers

    def view(self, key: K, instance: str) -> Collector:
        """What a /scrape response adds for ``key``: its workers' families and health
        (started now on a first scrape), and whether the cap refused them."""
        return _TargetView(instance, self.acquire(key))

    def _take_idle(self, now: float) -> list[Worker]:
        """Remove the targets unscraped for ``idle_timeout`` (caller holds the lock)."""
        idle = [k for k, e in self._live.items() if now - e.last_used >= self.idle_timeout]
        self._expired += len(idle)
        return [worker for k in idle for worker in self._live.pop(k).workers]

    def reap(self) -> int:
        """Stop the workers of idle targets now; how many targets were stopped."""
        with self._lock:
            before = self._expired
            idle = self._take_idle(self._clock())
            stopped = self._expired - before
        self._stop_all(idle)
        return stopped

    @staticmethod
    def _stop_all(workers: Sequence[Worker]) -> None:
        """Stop in parallel: each stop closes connections, then joins its thread."""
        threads = [threading.Thread(target=w.stop, daemon=True) for w in workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _reap_loop(self) -> None:
        interval = min(self.idle_timeout / 4, MAX_REAP_INTERVAL)
        while not self._stop.wait(interval):
            try:
                self.reap()
            except Exception:  # the reaper must outlive any one stop
                log.exception("/scrape: stopping idle target workers failed")

    def start(self) -> None:
        """Start the reaper thread (idempotent)."""
        if self._reaper is None or not self._reaper.is_alive():
            self._stop.clear()
            self._reaper = threading.Thread(target=self._reap_loop, name="target-reaper",
                                            daemon=True)  # fmt: skip
            self._reaper.start()

    def stop(self) -> None:
        """Stop the reaper and every target's workers."""
        self._stop.set()
        if self._reaper is not None:
            self._reaper.join(5)
            self._reaper = None
        with self._lock:
            workers = [w for entry in self._live.values() for w in entry.workers]
            self._live.clear()
        self._stop_all(workers)

    def describe(self) -> Iterator[Metric]:
        for spec in _FAMILIES:
            yield spec.new_family()

    def collect(self) -> Iterator[Metric]:
        """Live targets, the cap, refusals and expiries (on the exporter's /metrics)."""
        with self._lock:
            values = (len(self._live), self.max_targets, self._refused, self._expired)
        for spec, value in zip(_FAMILIES, values, strict=True):
            family = spec.new_family()
            family.add_metric([], float(value))
            yield family


class _TargetView(Collector):
    """One /scrape response's per-type families, their workers' health, and
    ``cache_exporter_scrape_target_workers`` (0: the target cap refused workers)."""

    def __init__(self, instance: str, workers: Sequence[Worker] | None) -> None:
        self._instance = instance
        self._workers = workers

    def collect(self) -> Iterator[Metric]:
        status = metrics.SCRAPE_TARGET_WORKERS.new_family()
        status.add_metric([self._instance], 0.0 if self._workers is None else 1.0)
        yield status
        for worker in self._workers or ():
            yield from worker.collect()
        if self._workers:
            yield from WorkerHealth(self._workers).collect()
