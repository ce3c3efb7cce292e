"""The single definition of every metric this project emits.

Names, help texts, label names and histogram buckets live here and nowhere
else: the client, the collectors, the rule generator and the dashboards all
import them, so a renamed metric cannot leave an alert or a panel silently
empty.  Label *values* that are fixed sets (layers, operations, error classes,
eviction reasons) are defined here too; key-type values come from the SLO file
plus :data:`TYPE_OTHER`.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from typing import Literal

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

MetricKind = Literal["counter", "gauge", "histogram", "info"]


@dataclass(frozen=True)
class MetricSpec:
    """One metric family: its exposed name, kind, help and label names."""

    name: str
    kind: MetricKind
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] | None = None

    @property
    def family(self) -> str:
        """Family name as prometheus-client wants it (counters without ``_total``)."""
        if self.kind == "counter" and self.name.endswith("_total"):
            return self.name[: -len("_total")]
        return self.name


# --- fixed label values ------------------------------------------------------

LAYER_REDIS = "redis"
LAYER_POSTGRES = "postgres"
LAYERS = (LAYER_REDIS, LAYER_POSTGRES)

#: key-type label for keys that match no key type of the SLO file
TYPE_OTHER = "other"
#: key-type label for evictions/expirations Redis counted but no notification named
TYPE_UNATTRIBUTED = "unattributed"
#: key-type label used by rules and alerts for "all types together"
TYPE_ALL = "all"
#: label values a key type of the SLO file may not take
RESERVED_TYPE_NAMES = frozenset({TYPE_OTHER, TYPE_UNATTRIBUTED, TYPE_ALL})

#: every value of the ``operation`` label on client metrics (bounded set)
OPERATIONS = (
    "get",
    "set",
    "delete",
    "delete_pattern",
    "get_or_compute",
    "mget",
    "mset",
    "incr",
    "decr",
    "lpush",
    "rpop",
    "set_with_tags",
    "invalidate_tag",
    "version",
    "publish",
    "subscribe",
)

#: every value of the ``error`` label on ``cache_errors_total``
ERROR_CLASSES = (
    "connection",  # refused, reset, DNS: Redis unreachable
    "timeout",  # socket or lock timeout
    "circuit_open",  # call skipped because the breaker is open
    "serialization",  # a stored value could not be decoded
    "response",  # Redis answered with an error (OOM, WRONGTYPE, ...)
    "other",
)

REASON_MAXMEMORY = "maxmemory"
REASON_EXPIRED = "expired"
EVICTION_REASONS = (REASON_MAXMEMORY, REASON_EXPIRED)

# --- buckets -----------------------------------------------------------------

#: cache call latency; 0.01 (the ADR's 10 ms p99 target) is a bucket boundary and
#: the buckets are 1 ms apart around it so histogram_quantile reads p99 near 10 ms
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0001,
    0.00025,
    0.0005,
    0.00075,
    0.001,
    0.002,
    0.003,
    0.004,
    0.005,
    0.006,
    0.007,
    0.008,
    0.009,
    0.01,
    0.011,
    0.0125,
    0.015,
    0.02,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)

#: loader (miss penalty) time: database queries to LLM calls
COMPUTE_BUCKETS: tuple[float, ...] = (
    0.001,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)

# --- the cache_* contract ----------------------------------------------------

CACHE_HITS = MetricSpec(
    "cache_hits_total", "counter", "Reads answered by the cache.", ("layer", "type")
)
CACHE_MISSES = MetricSpec(
    "cache_misses_total", "counter", "Reads the cache could not answer.", ("layer", "type")
)
CACHE_LATENCY = MetricSpec(
    "cache_latency_seconds",
    "histogram",
    "Client-observed time per cache call.",
    ("layer", "operation"),
    LATENCY_BUCKETS,
)
CACHE_ERRORS = MetricSpec(
    "cache_errors_total",
    "counter",
    "Failed cache calls by error class (the caller was served from the source).",
    ("layer", "operation", "error"),
)
CACHE_COMPUTE = MetricSpec(
    "cache_compute_seconds",
    "histogram",
    "Time spent in get_or_compute loaders (the miss penalty).",
    ("type",),
    COMPUTE_BUCKETS,
)
CACHE_SIZE = MetricSpec(
    "cache_size_bytes", "gauge", "Estimated memory per key type (sampled).", ("layer", "type")
)
CACHE_KEYS = MetricSpec(
    "cache_keys", "gauge", "Estimated key count per key type (sampled).", ("layer", "type")
)
CACHE_EVICTIONS = MetricSpec(
    "cache_evictions_total",
    "counter",
    "Keys removed by cause (maxmemory eviction or TTL expiry) per key type; "
    "type=unattributed holds any gap to Redis' own counters.",
    ("layer", "type", "reason"),
)

CLIENT_METRICS = (CACHE_HITS, CACHE_MISSES, CACHE_LATENCY, CACHE_ERRORS, CACHE_COMPUTE)
EXPORTER_CACHE_METRICS = (CACHE_SIZE, CACHE_KEYS, CACHE_EVICTIONS, CACHE_HITS, CACHE_MISSES)

# --- the server's view: redis_* (names as the Go redis_exporter uses them) ------
# The full INFO-field tables live with the INFO collector's section below once it
# grows; these are the names rules and dashboards depend on.

REDIS_UP = MetricSpec(
    "redis_up", "gauge", "1 if the last scrape of Redis succeeded.", ("instance",)
)
REDIS_KEYSPACE_HITS = MetricSpec(
    "redis_keyspace_hits_total",
    "counter",
    "Successful key lookups (INFO keyspace_hits).",
    ("instance",),
)
REDIS_KEYSPACE_MISSES = MetricSpec(
    "redis_keyspace_misses_total",
    "counter",
    "Failed key lookups (INFO keyspace_misses).",
    ("instance",),
)
REDIS_MEMORY_USED = MetricSpec(
    "redis_memory_used_bytes", "gauge", "Memory used by Redis (INFO used_memory).", ("instance",)
)
REDIS_MEMORY_MAX = MetricSpec(
    "redis_memory_max_bytes", "gauge", "maxmemory setting, 0 if unlimited.", ("instance",)
)
REDIS_EVICTED_KEYS = MetricSpec(
    "redis_evicted_keys_total",
    "counter",
    "Keys evicted by maxmemory (INFO evicted_keys).",
    ("instance",),
)
REDIS_EXPIRED_KEYS = MetricSpec(
    "redis_expired_keys_total", "counter", "Keys expired by TTL (INFO expired_keys).", ("instance",)
)
REDIS_CONNECTED_CLIENTS = MetricSpec(
    "redis_connected_clients",
    "gauge",
    "Client connections (INFO connected_clients).",
    ("instance",),
)
REDIS_COMMANDS = MetricSpec(
    "redis_commands_total", "counter", "Calls per command (INFO commandstats).", ("instance", "cmd")
)
REDIS_COMMANDS_DURATION = MetricSpec(
    "redis_commands_duration_seconds_total",
    "counter",
    "Time spent per command (INFO commandstats).",
    ("instance", "cmd"),
)
REDIS_LATENCY_PERCENTILES = MetricSpec(
    "redis_latency_percentiles_seconds",
    "gauge",
    "Server-side command latency percentiles (INFO latencystats, Redis 7+).",
    ("instance", "cmd", "quantile"),
)

# --- exporter self-metrics ------------------------------------------------------

EXPORTER_SCRAPE_DURATION = MetricSpec(
    "cache_exporter_scrape_duration_seconds",
    "gauge",
    "Time the last scrape of Redis took.",
    ("instance",),
)
EXPORTER_SCRAPE_ERRORS = MetricSpec(
    "cache_exporter_scrape_errors_total", "counter", "Scrapes of Redis that failed.", ("instance",)
)
EXPORTER_LAST_SCRAPE_ERROR = MetricSpec(
    "cache_exporter_last_scrape_error",
    "gauge",
    "1 if the last scrape failed; the error class is the label.",
    ("instance", "error"),
)


# --- client-side metric objects ---------------------------------------------------


class ClientMetrics:
    """The client's metric objects, registered once per registry.

    Several :class:`~exporter.client.CacheService` instances in one process
    share these (registering a name twice on one registry is an error).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.hits = Counter(
            CACHE_HITS.family, CACHE_HITS.help, CACHE_HITS.labels, registry=registry
        )
        self.misses = Counter(
            CACHE_MISSES.family, CACHE_MISSES.help, CACHE_MISSES.labels, registry=registry
        )
        self.latency = Histogram(
            CACHE_LATENCY.family,
            CACHE_LATENCY.help,
            CACHE_LATENCY.labels,
            buckets=CACHE_LATENCY.buckets or (),
            registry=registry,
        )
        self.errors = Counter(
            CACHE_ERRORS.family, CACHE_ERRORS.help, CACHE_ERRORS.labels, registry=registry
        )
        self.compute = Histogram(
            CACHE_COMPUTE.family,
            CACHE_COMPUTE.help,
            CACHE_COMPUTE.labels,
            buckets=CACHE_COMPUTE.buckets or (),
            registry=registry,
        )


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


# --- background sampler and eviction-notification self-metrics ---------------------
# (owned by exporter/collectors/keyspace_sampler.py and exporter/collectors/evictions.py)

SAMPLER_KEYS_SAMPLED = MetricSpec(
    "cache_exporter_sampler_keys_sampled",
    "gauge",
    "Keys whose size was measured in the last complete sampling cycle.",
    ("instance",),
)
SAMPLER_CYCLE_SECONDS = MetricSpec(
    "cache_exporter_sampler_cycle_duration_seconds",
    "gauge",
    "Wall time the last complete sampling cycle took.",
    ("instance",),
)
SAMPLER_CYCLES = MetricSpec(
    "cache_exporter_sampler_cycles_total", "counter", "Completed sampling cycles.", ("instance",)
)
SAMPLER_LAST_CYCLE = MetricSpec(
    "cache_exporter_sampler_last_cycle_timestamp_seconds",
    "gauge",
    "Unix time the last sampling cycle completed (age of the per-type estimates).",
    ("instance",),
)
NOTIFICATIONS = MetricSpec(
    "cache_exporter_notifications_total",
    "counter",
    "Keyspace notifications (evicted, expired) received.",
    ("instance", "reason"),
)
NOTIFICATION_RECONNECTS = MetricSpec(
    "cache_exporter_notification_reconnects_total",
    "counter",
    "Times the keyspace-notification subscription was re-established.",
    ("instance",),
)
NOTIFICATION_LAG = MetricSpec(
    "cache_exporter_notification_lag_seconds",
    "gauge",
    "Seconds since the last keyspace notification was processed.",
    ("instance",),
)
