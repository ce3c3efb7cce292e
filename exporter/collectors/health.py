"""Error classes, restart backoff and health of the collectors' workers.

Whatever a Redis (or something pretending to be one) answers, a collector must
neither die nor flood the log: :func:`error_class` turns any exception into a
bounded label value, :class:`Backoff` spaces restarts (capped exponential, reset
after a healthy stretch), :class:`RepeatFilter` logs each failure class once per
streak, and :class:`CollectorHealth` is what ``cache_exporter_collector_*``
report: up, restarts and the class of the last error.

:class:`WorkerHealth` is the prometheus-client collector that serves those
families for all background workers at once (one registry may hold a family
name only once, so the workers cannot each serve their own).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

import redis
from prometheus_client.core import Metric
from prometheus_client.registry import Collector
from redis.exceptions import AuthorizationError

from exporter.metrics import COLLECTOR_LAST_ERROR, COLLECTOR_RESTARTS, COLLECTOR_UP

#: exception type -> error class, first match wins (subclasses before their bases)
_ERROR_CLASSES: tuple[tuple[type[BaseException], str], ...] = (
    (redis.AuthenticationError, "auth"),
    (AuthorizationError, "auth"),
    (redis.TimeoutError, "timeout"),
    (TimeoutError, "timeout"),
    (redis.ConnectionError, "connection"),
    (OSError, "connection"),
    (redis.ResponseError, "response"),
    # a reply we could not read: protocol garbage, too large, not the shape INFO has
    (redis.InvalidResponse, "parse"),
    (redis.DataError, "parse"),
    (ValueError, "parse"),  # InfoParseError, UnicodeDecodeError, int("abc")
    (LookupError, "parse"),  # KeyError / IndexError: a field or element missing
)
_ERROR_PREFIXES_AUTH = ("NOAUTH", "WRONGPASS", "NOPERM")


def error_class(exc: BaseException) -> str:
    """Bounded label value for a failure (never the message: it may name secrets).

    One of :data:`exporter.metrics.SCRAPE_ERROR_CLASSES`; an exception may name
    its own class in an ``error_class`` attribute."""
    own = getattr(exc, "error_class", None)
    if isinstance(own, str):
        return own
    if isinstance(exc, redis.ResponseError) and str(exc).startswith(_ERROR_PREFIXES_AUTH):
        return "auth"
    for exc_type, name in _ERROR_CLASSES:
        if isinstance(exc, exc_type):
            return name
    return "other"


def failure_reason(exc: BaseException) -> str:
    """What to log about a failed call: the class, plus Redis' own words for an error
    *reply* (``NOPERM ...``, ``WRONGPASS ...``), which never echo a password.  Socket
    errors keep only their class: their text can carry addresses from the URL."""
    if isinstance(exc, redis.ResponseError | redis.AuthenticationError):
        # the server's words are outside data (a /scrape target is any allowed host):
        # escape sequences, bidi controls and non-ASCII are shown escaped, on one line
        text = ascii(" ".join(str(exc).split())[:200])[1:-1]
        return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return type(exc).__name__


class RepeatFilter:
    """Log a failure at WARNING the first time its reason shows up in a streak of
    failures, at DEBUG while it repeats, so a restart loop (an ACL refusing a channel,
    a reply that never parses) says why once instead of every few seconds, even when
    two reasons alternate.  A success ends the streak."""

    #: distinct reasons remembered per streak; beyond it every new one is DEBUG too
    MAX_REASONS = 32

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def level(self, reason: str) -> int:
        with self._lock:
            if reason in self._seen or len(self._seen) >= self.MAX_REASONS:
                return logging.DEBUG
            self._seen.add(reason)
            return logging.WARNING

    def reset(self) -> None:
        """A success ends the streak: the next failure is news again."""
        with self._lock:
            self._seen.clear()


#: first restart delay, the cap, and how long a worker must have run healthily
#: before its next failure starts the delays over
BACKOFF_INITIAL = 0.1
BACKOFF_MAX = 30.0
HEALTHY_STRETCH = 30.0


class Backoff:
    """Capped exponential delays between restarts: 0.1, 0.2, 0.4 ... 30 s, back to
    0.1 s once an attempt has stayed healthy for ``healthy_stretch`` seconds."""

    def __init__(
        self,
        initial: float = BACKOFF_INITIAL,
        maximum: float = BACKOFF_MAX,
        healthy_stretch: float = HEALTHY_STRETCH,
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self.healthy_stretch = healthy_stretch
        self._next = initial

    def delay(self, healthy_for: float = 0.0) -> float:
        """The wait before the next attempt, given how long the failed one was healthy."""
        if healthy_for >= self.healthy_stretch:
            self._next = self.initial
        current = self._next
        self._next = min(current * 2, self.maximum)
        return current


class CollectorHealth:
    """Up, restarts and the last error class of one collector (thread-safe).

    ``up`` is 1 while the worker runs and nothing has failed since its last
    success (so a worker busy with its first cycle counts as up), 0 from a
    failure until the next success, and 0 whenever the worker is not running.
    """

    def __init__(self, collector: str, instance: str) -> None:
        self.collector = collector
        self.instance = instance
        self._lock = threading.Lock()
        self._failed: str | None = None
        self._restarts = 0
        self._healthy_since: float | None = time.monotonic()

    def ok(self) -> None:
        with self._lock:
            self._failed = None
            if self._healthy_since is None:
                self._healthy_since = time.monotonic()

    def failed(self, exc: BaseException) -> str:
        """Record a failure; returns its class."""
        cls = error_class(exc)
        with self._lock:
            self._failed = cls
            self._healthy_since = None
        return cls

    def restarted(self) -> None:
        with self._lock:
            self._restarts += 1

    def healthy_for(self) -> float:
        """Seconds since the last failure was followed by a success (0 while failing)."""
        with self._lock:
            since = self._healthy_since
        return 0.0 if since is None else time.monotonic() - since

    @property
    def restarts(self) -> int:
        return self._restarts

    @property
    def last_error(self) -> str | None:
        return self._failed

    def samples(self, running: bool) -> tuple[list[str], float, float, list[str], float]:
        """Label values and values of up, restarts and last_error for this collector."""
        with self._lock:
            failed, restarts = self._failed, self._restarts
        me = COLLECTOR_UP.label_values(instance=self.instance, collector=self.collector)
        return (
            me,
            1.0 if running and not failed else 0.0,
            float(restarts),
            [*me, failed or ""],
            1.0 if failed else 0.0,
        )


class Supervised(Protocol):
    """A background worker with health (:class:`~exporter.collectors._redis.BackgroundThread`)."""

    @property
    def health(self) -> CollectorHealth: ...

    @property
    def running(self) -> bool: ...


class WorkerHealth(Collector):
    """``cache_exporter_collector_{up,restarts_total,last_error}`` of background workers."""

    def __init__(self, workers: Iterable[Supervised] | Callable[[], Iterable[Supervised]]) -> None:
        """``workers``, or a function giving the current ones (a cluster's change)."""
        self._workers = workers if callable(workers) else list(workers)

    def describe(self) -> Iterator[Metric]:
        for spec in (COLLECTOR_UP, COLLECTOR_RESTARTS, COLLECTOR_LAST_ERROR):
            yield spec.new_family()

    def collect(self) -> Iterator[Metric]:
        up = COLLECTOR_UP.new_family()
        restarts = COLLECTOR_RESTARTS.new_family()
        last = COLLECTOR_LAST_ERROR.new_family()
        workers = self._workers() if callable(self._workers) else self._workers
        for worker in workers:
            me, is_up, count, error_labels, failing = worker.health.samples(worker.running)
            up.add_metric(me, is_up)
            restarts.add_metric(me, count)
            last.add_metric(error_labels, failing)
        yield from (up, restarts, last)
