"""The INFO collector: Redis' own counters, read fresh on every scrape.

One ``INFO ALL`` round trip per scrape, bounded by socket timeouts and by a
wall-clock deadline (:mod:`~exporter.collectors._deadline`: a reply that
trickles in, or a host name that never resolves, outlasts any socket timeout),
so a down, stalled or crawling Redis gives ``redis_up 0`` and the error class
quickly instead of hanging the scrape.  What becomes a metric is the tables in
:mod:`exporter.metrics`; this module only converts values and emits.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import redis
from prometheus_client.core import (
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from redis.backoff import NoBackoff
from redis.exceptions import AuthorizationError
from redis.retry import Retry

from exporter import metrics
from exporter.collectors._deadline import Deadline, DeadlineExceeded
from exporter.collectors.info_parser import InfoParseError, RedisInfo, parse_info
from exporter.metrics import InfoUnit

log = logging.getLogger(__name__)

#: exception type -> error class, first match wins (subclasses before their bases)
_ERROR_CLASSES: tuple[tuple[type[BaseException], str], ...] = (
    (redis.AuthenticationError, "auth"),
    (AuthorizationError, "auth"),
    (redis.TimeoutError, "timeout"),
    (TimeoutError, "timeout"),
    (redis.ConnectionError, "connection"),
    (OSError, "connection"),
    (redis.ResponseError, "response"),
    (InfoParseError, "parse"),
)
_ERROR_PREFIXES_AUTH = ("NOAUTH", "WRONGPASS", "NOPERM")


def error_class(exc: BaseException) -> str:
    """Bounded label value for a failed scrape (never the message: it may name secrets)."""
    if isinstance(exc, redis.ResponseError) and str(exc).startswith(_ERROR_PREFIXES_AUTH):
        return "auth"
    for exc_type, name in _ERROR_CLASSES:
        if isinstance(exc, exc_type):
            return name
    return "other"


def convert(raw: str | float, unit: InfoUnit) -> float | None:
    """The one INFO value conversion; ``None`` for a value that is not a number."""
    if isinstance(raw, float):
        value = raw
    elif unit == "status":
        return 1.0 if raw.strip() == "ok" else 0.0
    else:
        try:
            value = float(raw.rstrip("%"))
        except ValueError:
            return None
    if unit == "usec":
        return value / 1e6
    if unit == "msec":
        return value / 1e3
    return value


def _quantile(name: str) -> str:
    """``p99.9`` -> ``0.999`` (latencystats names percentiles, Prometheus wants quantiles)."""
    return f"{float(name.lstrip('p')) / 100:g}"


def _latency_summary(info: RedisInfo, instance: str) -> SummaryMetricFamily:
    """latencystats quantiles, with commandstats calls/time as the summary's count/sum."""
    spec = metrics.REDIS_LATENCY_PERCENTILES
    label_names = [name for name in spec.labels if name != "quantile"]
    family = SummaryMetricFamily(spec.family, spec.help, labels=label_names)
    for cmd, percentiles in sorted(info.latencystats.items()):
        labels = dict(zip(label_names, (instance, cmd), strict=True))
        for name, usec in percentiles.items():
            family.samples.append(
                Sample(spec.name, {**labels, "quantile": _quantile(name)}, usec / 1e6)
            )
        stats = info.commandstats.get(cmd, {})
        family.samples.append(Sample(f"{spec.name}_count", labels, stats.get("calls", 0.0)))
        family.samples.append(Sample(f"{spec.name}_sum", labels, stats.get("usec", 0.0) / 1e6))
    return family


#: Redis 7 stops tracking new error prefixes past 128; Redis 6.2 does not, and a
#: script can make up prefixes (``redis.error_reply``), so we cap the label set too.
MAX_ERROR_PREFIXES = 128
OVERFLOW_ERROR_PREFIX = "OTHER"


def bounded_errorstats(errorstats: dict[str, float]) -> dict[str, float]:
    """At most :data:`MAX_ERROR_PREFIXES` label values: the first prefixes in sorted
    order keep their own series, the rest are summed under ``OTHER``."""
    ordered = sorted(errorstats.items())
    if len(ordered) <= MAX_ERROR_PREFIXES:
        return dict(ordered)
    kept = dict(ordered[: MAX_ERROR_PREFIXES - 1])
    kept[OVERFLOW_ERROR_PREFIX] = sum(count for _, count in ordered[MAX_ERROR_PREFIXES - 1 :])
    return kept


def info_metrics(info: RedisInfo, instance: str) -> Iterator[Metric]:
    """Metric families for one parsed INFO reply; fields this server lacks are skipped."""
    for section, fields in metrics.REDIS_INFO_FIELDS.items():
        for item in fields:
            raw = info.get(section, item.field)
            value = None if raw is None else convert(raw, item.unit)
            if value is None:
                continue
            family = item.spec.new_family()
            family.add_metric([instance], value)
            yield family

    for item in metrics.REDIS_COMMANDSTATS:
        family = item.spec.new_family()
        for cmd, stats in sorted(info.commandstats.items()):
            if item.field in stats:
                family.add_metric([instance, cmd], convert(stats[item.field], item.unit) or 0.0)
        if family.samples:
            yield family

    if info.latencystats:
        yield _latency_summary(info, instance)

    if info.errorstats:
        family = metrics.REDIS_ERRORS.new_family()
        for prefix, count in bounded_errorstats(info.errorstats).items():
            family.add_metric([instance, prefix], count)
        yield family

    for item in metrics.REDIS_KEYSPACE:
        family = item.spec.new_family()
        for db, stats in sorted(info.keyspace.items()):
            if item.field in stats:
                family.add_metric([instance, db], convert(stats[item.field], item.unit) or 0.0)
        if family.samples:
            yield family

    family = metrics.REDIS_INSTANCE_INFO.new_family()
    details = [
        next((v for s in info.fields.values() if (v := s.get(name)) is not None), "")
        for name in metrics.REDIS_INSTANCE_INFO_FIELDS
    ]
    family.add_metric([instance, *details], 1.0)
    yield family


def redis_client(url: str, timeout: float, redis_kwargs: dict[str, Any] | None = None) -> Any:
    """A client whose every call fails within ``timeout`` and never retries (scrape-bound)."""
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        **(redis_kwargs or {}),
    )


class ErrorCounts:
    """Failed scrapes per instance, kept beyond one collector (thread-safe, bounded).

    ``/scrape`` builds a collector per request; were the count the collector's
    own, ``cache_exporter_scrape_errors_total`` would start at 0 on every
    request, a counter going backwards whose ``rate()`` is 0 while a target
    keeps failing.  The least recently scraped instance is forgotten beyond
    ``max_instances`` (its counter then restarts at 0, which Prometheus reads
    as a reset), so arbitrary targets cannot grow memory without bound.
    """

    def __init__(self, max_instances: int = 10_000) -> None:
        self.max_instances = max_instances
        self._counts: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, instance: str) -> None:
        with self._lock:
            self._counts[instance] = self._counts.get(instance, 0) + 1
            self._counts.move_to_end(instance)
            while len(self._counts) > self.max_instances:
                self._counts.popitem(last=False)

    def get(self, instance: str) -> int:
        with self._lock:
            if instance in self._counts:
                self._counts.move_to_end(instance)
            return self._counts.get(instance, 0)


class RedisInfoCollector(Collector):
    """Reads ``INFO ALL`` on each scrape and reports its own health alongside."""

    def __init__(
        self,
        redis_url: str,
        *,
        instance: str,
        timeout: float = 2.5,
        redis_kwargs: dict[str, Any] | None = None,
        errors: ErrorCounts | None = None,
    ) -> None:
        self.instance = instance
        #: failed scrapes per instance; /scrape shares one across its per-request collectors
        self._errors = ErrorCounts() if errors is None else errors
        self._timeout = timeout
        self._deadline = Deadline(f"redis {instance}")
        self._client = redis_client(redis_url, timeout, redis_kwargs)
        # keep INFO's raw text: the parser is ours, tested on captures
        self._client.set_response_callback("INFO", lambda response, **_: response)

    def describe(self) -> list[Metric]:
        """Families by name only, so registering never talks to Redis."""
        specs = (
            *metrics.REDIS_METRICS,
            metrics.EXPORTER_SCRAPE_DURATION,
            metrics.EXPORTER_SCRAPE_ERRORS,
            metrics.EXPORTER_LAST_SCRAPE_ERROR,
        )
        return [
            SummaryMetricFamily(spec.family, spec.help)
            if spec.kind == "summary"
            else spec.new_family()
            for spec in specs
        ]

    def _bounded(self, call: Callable[[], Any]) -> Any:
        """``call()`` within the timeout as a wall-clock deadline, not just per socket read."""
        try:
            return self._deadline.run(call, self._timeout)
        except DeadlineExceeded:
            # end the abandoned call's read instead of leaving its thread on the socket
            self._client.connection_pool.disconnect()
            raise

    def read_info(self) -> RedisInfo:
        """One INFO ALL round trip, parsed; raises on any failure or after the timeout."""
        raw = self._bounded(lambda: self._client.execute_command("INFO", "ALL"))
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        return parse_info(text)

    def ping(self) -> None:
        """Raise unless Redis answers within the timeout (readiness)."""
        self._bounded(self._client.ping)

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        families: list[Metric] = []
        failure = ""
        try:
            families = list(info_metrics(self.read_info(), self.instance))
        except (redis.RedisError, OSError, InfoParseError) as exc:
            failure = error_class(exc)
            self._errors.add(self.instance)
            log.warning("scrape of Redis %s failed: %s", self.instance, failure)
        yield from families
        up = metrics.REDIS_UP.new_family()
        up.add_metric([self.instance], 0.0 if failure else 1.0)
        yield up
        duration = metrics.EXPORTER_SCRAPE_DURATION.new_family()
        duration.add_metric([self.instance], time.perf_counter() - started)
        yield duration
        errors = metrics.EXPORTER_SCRAPE_ERRORS.new_family()
        errors.add_metric([self.instance], float(self._errors.get(self.instance)))
        yield errors
        last = metrics.EXPORTER_LAST_SCRAPE_ERROR.new_family()
        last.add_metric([self.instance, failure], 1.0 if failure else 0.0)
        yield last

    def close(self) -> None:
        self._client.close()
