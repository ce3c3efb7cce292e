"""The PostgreSQL buffer-cache layer: ``blks_hit`` / ``blks_read`` as cache hits and misses.

The cache in front of the database has its own hit rate; PostgreSQL's shared
buffers are the next layer down.  Both counters are summed over every database
of the cluster and exposed with the fixed ``type`` value
:data:`~exporter.metrics.TYPE_POSTGRES_BUFFER`, so no database name (unbounded
in a multi-tenant product) becomes a label value.  Dropping a database lowers
the sums, which Prometheus reads as a counter reset.

A fresh connection per scrape, bounded by ``connect_timeout`` and
``statement_timeout`` and, since libpq's ``connect_timeout`` is whole seconds
and at least 2, by a wall-clock deadline of ``timeout`` seconds
(:mod:`~exporter.collectors._deadline`): a down, slow or silent PostgreSQL
gives ``cache_exporter_postgres_up 0`` within the scrape's deadline and the
exporter keeps serving.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator

import psycopg
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter import metrics
from exporter.collectors._deadline import Deadline
from exporter.redaction import redact_dsn

log = logging.getLogger(__name__)

QUERY = (
    "SELECT coalesce(sum(blks_hit), 0)::float8, coalesce(sum(blks_read), 0)::float8 "
    "FROM pg_stat_database"
)


class PostgresCollector(Collector):
    """Reads ``pg_stat_database`` once per scrape."""

    def __init__(self, dsn: str, *, timeout: float = 2.5) -> None:
        self._dsn = dsn
        self._timeout = timeout
        self._deadline = Deadline("postgres")

    def __repr__(self) -> str:
        return f"PostgresCollector({redact_dsn(self._dsn)!r})"

    def describe(self) -> list[Metric]:
        return [
            CounterMetricFamily(metrics.CACHE_HITS.family, metrics.CACHE_HITS.help, labels=[]),
            CounterMetricFamily(metrics.CACHE_MISSES.family, metrics.CACHE_MISSES.help, labels=[]),
            GaugeMetricFamily(metrics.POSTGRES_UP.family, metrics.POSTGRES_UP.help),
        ]

    def read(self) -> tuple[float, float]:
        """(blks_hit, blks_read) summed over the cluster; raises ``psycopg.Error``."""
        with psycopg.connect(
            self._dsn,
            # libpq takes whole seconds (and treats 1 as 2)
            connect_timeout=max(2, math.ceil(self._timeout)),
            options=f"-c statement_timeout={int(self._timeout * 1000)}",
            autocommit=True,
        ) as conn:
            row = conn.execute(QUERY).fetchone()
        if row is None:
            raise psycopg.DataError("pg_stat_database returned no row")
        return float(row[0]), float(row[1])

    def collect(self) -> Iterator[Metric]:
        up = metrics.POSTGRES_UP.new_family()
        try:
            hits, reads = self._deadline.run(self.read, self._timeout)
        except (psycopg.Error, TimeoutError) as exc:
            # the class only: libpq messages can carry host and user, never worth the risk
            log.warning(
                "read of pg_stat_database on %s failed: %s",
                redact_dsn(self._dsn),
                type(exc).__name__,
            )
            up.add_metric([], 0.0)
            yield up
            return
        labels = [metrics.LAYER_POSTGRES, metrics.TYPE_POSTGRES_BUFFER]
        for spec, value in ((metrics.CACHE_HITS, hits), (metrics.CACHE_MISSES, reads)):
            family = spec.new_family()
            family.add_metric(labels, value)
            yield family
        up.add_metric([], 1.0)
        yield up
