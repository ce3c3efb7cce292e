"""The single definition of every metric this project emits.

Names, help texts, label names and histogram buckets live here and nowhere
else: the client, the collectors, the rule generator and the dashboards all
import them, so a renamed metric cannot leave an alert or a panel silently
empty.  Label *values* that are fixed sets (layers, operations, error classes,
eviction reasons) are defined here too; key-type values come from the SLO file
plus :data:`TYPE_OTHER`.

A leaf of the package: names, labels, buckets and the INFO tables only, nothing
imported from ``exporter`` (``tests/test_metrics.py`` checks it).  The client's
metric objects that record these are built in :mod:`exporter.client.families`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

MetricKind = Literal["counter", "gauge", "histogram", "summary", "info"]


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

    def new_family(self) -> CounterMetricFamily | GaugeMetricFamily:
        """A fresh family for a custom collector's ``collect()`` (counter or gauge)."""
        if self.kind == "counter":
            return CounterMetricFamily(self.family, self.help, labels=list(self.labels))
        return GaugeMetricFamily(self.family, self.help, labels=list(self.labels))

    def label_values(self, **values: str) -> list[str]:
        """Label values in this spec's label order, by name."""
        return [values[name] for name in self.labels]


# --- fixed label values ------------------------------------------------------

LAYER_REDIS = "redis"
LAYER_POSTGRES = "postgres"
#: the edge: CDN access logs (exporter.collectors.cdn_logs) and what the app's
#: server sees of browser caches (exporter.asgi: conditional requests answered 304)
LAYER_CDN = "cdn"
LAYER_BROWSER = "browser"
LAYERS = (LAYER_REDIS, LAYER_POSTGRES, LAYER_CDN, LAYER_BROWSER)

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
    "protocol",  # the reply is not Redis protocol: something else listens there
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

# --- the HTTP layers: the app's API latency and the browser/CDN caches -------------

#: API request latency; 0.2 (the ADR's API p95 < 200 ms) is a bucket boundary, with
#: 25 ms steps around it so histogram_quantile reads p95 near 200 ms
API_LATENCY_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.125,
    0.15,
    0.175,
    0.2,
    0.225,
    0.25,
    0.3,
    0.4,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    10.0,
)
#: ``route`` for a request no route of the app matched (never the raw path)
ROUTE_UNMATCHED = "unmatched"
#: ``route``/``method`` beyond the middleware's cap: one overflow series
ROUTE_OTHER = "other"
METHOD_OTHER = "OTHER"
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
#: ``cached``: whether the app answered from a cache (it says so, exporter.asgi)
CACHED_VALUES = ("true", "false")

API_LATENCY = MetricSpec(
    "api_request_duration_seconds",
    "histogram",
    "Time from request to the end of the response, per route template (never the raw "
    "path), method, status class and whether the app answered from a cache.",
    ("route", "method", "status_class", "cached"),
    API_LATENCY_BUCKETS,
)

#: ``rule`` values on cache_policy_violations_total: which part of the route class's
#: Cache-Control policy the response broke
POLICY_RULES = ("missing", "max_age", "s_maxage", "immutable", "no_cache", "public", "vary")
CACHE_POLICY_VIOLATIONS = MetricSpec(
    "cache_policy_violations_total",
    "counter",
    "Responses whose Cache-Control or Vary header breaks the policy of their path class "
    "(ADR-004: immutable assets for a year, API max-age/s-maxage 3600 with Vary, HTML "
    "no-cache).",
    ("type", "rule"),
)

#: ``format`` of a CDN log; ``outcome`` of one line read from it
CDN_FORMATS = ("cloudfront", "nginx")
CDN_LINE_OUTCOMES = ("hit", "miss", "ignored", "malformed", "oversized")
CDN_LINES = MetricSpec(
    "cache_exporter_cdn_log_lines_total",
    "counter",
    "CDN log lines read, by what became of them: hit or miss (counted in cache_*_total), "
    "ignored (no cache lookup: errors, redirects, header lines), malformed or oversized.",
    ("format", "outcome"),
)
CDN_FILES = MetricSpec(
    "cache_exporter_cdn_log_files_total",
    "counter",
    "CDN log files read to the end (outcome=done) or given up on (outcome=bad: not gzip, "
    "corrupt, over the size cap).",
    ("format", "outcome"),
)
CDN_POLL_ERRORS = MetricSpec(
    "cache_exporter_cdn_poll_errors_total",
    "counter",
    "Polls of the CDN logs that failed (unreadable directory or file, state not written).",
    ("format",),
)

#: emitted by exporter.asgi in the application's process
MIDDLEWARE_METRICS = (API_LATENCY, CACHE_POLICY_VIOLATIONS, CACHE_HITS, CACHE_MISSES)
CLIENT_METRICS = (CACHE_HITS, CACHE_MISSES, CACHE_LATENCY, CACHE_ERRORS, CACHE_COMPUTE)
EXPORTER_CACHE_METRICS = (CACHE_SIZE, CACHE_KEYS, CACHE_EVICTIONS, CACHE_HITS, CACHE_MISSES)

# --- the server's view: redis_* (names as the Go redis_exporter uses them) ------
# INFO fields map to metrics through the tables below, grouped by INFO section as
# oliver006/redis_exporter's metricMapGauges/metricMapCounters are.  Names are the
# Go exporter's where the meaning is the same; where its name carries a non-base
# unit (``_sec``, ``_usec``) ours says ``_seconds`` and the value is converted, so
# ``promtool check metrics`` stays clean.  Fields an older server lacks are skipped.

#: how an INFO value becomes a sample: plain number, microseconds or milliseconds
#: to seconds, or ``ok``/anything-else to 1/0
InfoUnit = Literal["number", "usec", "msec", "status"]


@dataclass(frozen=True)
class InfoField:
    """One ``field:value`` line of INFO exposed as one metric."""

    field: str
    spec: MetricSpec
    unit: InfoUnit = "number"


def _redis_gauge(name: str, help_text: str) -> MetricSpec:
    return MetricSpec(name, "gauge", help_text, ("instance",))


def _redis_counter(name: str, help_text: str) -> MetricSpec:
    return MetricSpec(name, "counter", help_text, ("instance",))


REDIS_UP = MetricSpec(
    "redis_up", "gauge", "1 if the last scrape of Redis succeeded.", ("instance",)
)
REDIS_KEYSPACE_HITS = _redis_counter(
    "redis_keyspace_hits_total", "Successful key lookups (INFO keyspace_hits)."
)
REDIS_KEYSPACE_MISSES = _redis_counter(
    "redis_keyspace_misses_total", "Failed key lookups (INFO keyspace_misses)."
)
REDIS_MEMORY_USED = _redis_gauge(
    "redis_memory_used_bytes", "Memory used by Redis (INFO used_memory)."
)
REDIS_MEMORY_MAX = _redis_gauge("redis_memory_max_bytes", "maxmemory setting, 0 if unlimited.")
REDIS_EVICTED_KEYS = _redis_counter(
    "redis_evicted_keys_total", "Keys evicted by maxmemory (INFO evicted_keys)."
)
REDIS_EXPIRED_KEYS = _redis_counter(
    "redis_expired_keys_total", "Keys expired by TTL (INFO expired_keys)."
)
REDIS_CONNECTED_CLIENTS = _redis_gauge(
    "redis_connected_clients", "Client connections (INFO connected_clients)."
)

#: INFO section -> the plain fields read from it
REDIS_INFO_FIELDS: dict[str, tuple[InfoField, ...]] = {
    "server": (
        InfoField("uptime_in_seconds", _redis_gauge("redis_uptime_in_seconds", "Server uptime.")),
    ),
    "clients": (
        InfoField("connected_clients", REDIS_CONNECTED_CLIENTS),
        InfoField("blocked_clients", _redis_gauge("redis_blocked_clients", "Clients blocked.")),
        # Redis 6+
        InfoField(
            "tracking_clients",
            _redis_gauge("redis_tracking_clients", "Clients using client-side caching."),
        ),
        # Redis 5+ (renamed from client_longest_output_list / client_biggest_input_buf)
        InfoField(
            "client_recent_max_input_buffer",
            _redis_gauge(
                "redis_client_recent_max_input_buffer_bytes", "Biggest recent input buffer."
            ),
        ),
        InfoField(
            "client_recent_max_output_buffer",
            _redis_gauge(
                "redis_client_recent_max_output_buffer_bytes", "Biggest recent output buffer."
            ),
        ),
    ),
    "memory": (
        InfoField("used_memory", REDIS_MEMORY_USED),
        InfoField(
            "used_memory_rss", _redis_gauge("redis_memory_used_rss_bytes", "Resident set size.")
        ),
        InfoField(
            "used_memory_peak",
            _redis_gauge("redis_memory_used_peak_bytes", "Peak of used_memory."),
        ),
        InfoField(
            "used_memory_overhead",
            _redis_gauge("redis_memory_used_overhead_bytes", "Memory for internal structures."),
        ),
        InfoField(
            "used_memory_startup",
            _redis_gauge("redis_memory_used_startup_bytes", "Memory used at startup."),
        ),
        InfoField(
            "used_memory_dataset",
            _redis_gauge("redis_memory_used_dataset_bytes", "Memory used by the dataset."),
        ),
        InfoField(
            "used_memory_lua", _redis_gauge("redis_memory_used_lua_bytes", "Lua engine memory.")
        ),
        InfoField(
            "used_memory_scripts",
            _redis_gauge("redis_memory_used_scripts_bytes", "Memory of cached scripts."),
        ),
        InfoField("maxmemory", REDIS_MEMORY_MAX),
        InfoField(
            "mem_fragmentation_ratio",
            _redis_gauge("redis_mem_fragmentation_ratio", "used_memory_rss / used_memory."),
        ),
        InfoField(
            "mem_fragmentation_bytes",
            _redis_gauge("redis_mem_fragmentation_bytes", "used_memory_rss - used_memory."),
        ),
        InfoField(
            "allocator_frag_ratio",
            _redis_gauge("redis_allocator_frag_ratio", "Allocator fragmentation ratio."),
        ),
        InfoField(
            "lazyfree_pending_objects",
            _redis_gauge("redis_lazyfree_pending_objects", "Objects waiting to be freed."),
        ),
        # the Go exporter emits it with --include-system-metrics; alerts divide by it
        InfoField(
            "total_system_memory",
            _redis_gauge("redis_total_system_memory_bytes", "Memory of the host Redis runs on."),
        ),
    ),
    "persistence": (
        InfoField("loading", _redis_gauge("redis_loading_dump_file", "1 while loading a dump.")),
        InfoField(
            "rdb_changes_since_last_save",
            _redis_gauge("redis_rdb_changes_since_last_save", "Changes since the last dump."),
        ),
        InfoField(
            "rdb_bgsave_in_progress",
            _redis_gauge("redis_rdb_bgsave_in_progress", "1 while an RDB save runs."),
        ),
        InfoField(
            "rdb_last_save_time",
            _redis_gauge("redis_rdb_last_save_timestamp_seconds", "Unix time of the last save."),
        ),
        InfoField(
            "rdb_last_bgsave_status",
            _redis_gauge("redis_rdb_last_bgsave_status", "1 if the last RDB save succeeded."),
            "status",
        ),
        # Go exporter: redis_rdb_last_bgsave_duration_sec (-1: never saved)
        InfoField(
            "rdb_last_bgsave_time_sec",
            _redis_gauge("redis_rdb_last_bgsave_duration_seconds", "Last RDB save time, -1 none."),
        ),
        # Go exporter: redis_rdb_current_bgsave_duration_sec (-1: none running)
        InfoField(
            "rdb_current_bgsave_time_sec",
            _redis_gauge(
                "redis_rdb_current_bgsave_duration_seconds", "Age of the running RDB save, -1 none."
            ),
        ),
        InfoField(
            "rdb_last_cow_size",
            _redis_gauge("redis_rdb_last_cow_size_bytes", "Copy-on-write memory of the last save."),
        ),
        InfoField("aof_enabled", _redis_gauge("redis_aof_enabled", "1 if AOF is on.")),
        InfoField(
            "aof_rewrite_in_progress",
            _redis_gauge("redis_aof_rewrite_in_progress", "1 while an AOF rewrite runs."),
        ),
        InfoField(
            "aof_rewrite_scheduled",
            _redis_gauge("redis_aof_rewrite_scheduled", "1 when an AOF rewrite waits for a save."),
        ),
        # Go exporter: redis_aof_last_rewrite_duration_sec / _current_rewrite_duration_sec
        InfoField(
            "aof_last_rewrite_time_sec",
            _redis_gauge(
                "redis_aof_last_rewrite_duration_seconds", "Last AOF rewrite time, -1 none."
            ),
        ),
        InfoField(
            "aof_current_rewrite_time_sec",
            _redis_gauge(
                "redis_aof_current_rewrite_duration_seconds", "Age of the running rewrite, -1 none."
            ),
        ),
        InfoField(
            "aof_last_bgrewrite_status",
            _redis_gauge("redis_aof_last_bgrewrite_status", "1 if the last AOF rewrite succeeded."),
            "status",
        ),
        InfoField(
            "aof_last_write_status",
            _redis_gauge("redis_aof_last_write_status", "1 if the last AOF write succeeded."),
            "status",
        ),
        InfoField(
            "aof_last_cow_size",
            _redis_gauge("redis_aof_last_cow_size_bytes", "Copy-on-write memory of the rewrite."),
        ),
        # only while AOF is on
        InfoField(
            "aof_current_size",
            _redis_gauge("redis_aof_current_size_bytes", "Current size of the AOF."),
        ),
        InfoField(
            "aof_base_size",
            _redis_gauge("redis_aof_base_size_bytes", "AOF size at the last rewrite or start."),
        ),
        InfoField(
            "aof_pending_rewrite",
            _redis_gauge("redis_aof_pending_rewrite", "1 when a rewrite waits for a save."),
        ),
        InfoField(
            "aof_buffer_length",
            _redis_gauge("redis_aof_buffer_length", "Size of the AOF buffer."),
        ),
        InfoField(
            "aof_pending_bio_fsync",
            _redis_gauge("redis_aof_pending_bio_fsync", "fsync jobs queued in the background."),
        ),
        InfoField(
            "aof_delayed_fsync",
            _redis_gauge("redis_aof_delayed_fsync", "Delayed fsync calls."),
        ),
    ),
    "stats": (
        InfoField(
            "total_connections_received",
            _redis_counter("redis_connections_received_total", "Connections accepted."),
        ),
        InfoField(
            "total_commands_processed",
            _redis_counter("redis_commands_processed_total", "Commands processed."),
        ),
        InfoField(
            "rejected_connections",
            _redis_counter("redis_rejected_connections_total", "Connections refused (maxclients)."),
        ),
        InfoField(
            "total_net_input_bytes",
            _redis_counter("redis_net_input_bytes_total", "Bytes read from the network."),
        ),
        InfoField(
            "total_net_output_bytes",
            _redis_counter("redis_net_output_bytes_total", "Bytes written to the network."),
        ),
        InfoField("expired_keys", REDIS_EXPIRED_KEYS),
        InfoField("evicted_keys", REDIS_EVICTED_KEYS),
        InfoField("keyspace_hits", REDIS_KEYSPACE_HITS),
        InfoField("keyspace_misses", REDIS_KEYSPACE_MISSES),
        InfoField(
            "expired_stale_perc",
            _redis_gauge("redis_expired_stale_percentage", "Estimated share of stale keys."),
        ),
        InfoField(
            "expired_time_cap_reached_count",
            _redis_counter(
                "redis_expired_time_cap_reached_total", "Expire cycles stopped by their time cap."
            ),
        ),
        InfoField(
            "pubsub_channels", _redis_gauge("redis_pubsub_channels", "Pub/sub channels in use.")
        ),
        InfoField(
            "pubsub_patterns", _redis_gauge("redis_pubsub_patterns", "Pub/sub patterns in use.")
        ),
        # Go exporter: redis_latest_fork_usec
        InfoField(
            "latest_fork_usec",
            _redis_gauge("redis_latest_fork_seconds", "Duration of the latest fork."),
            "usec",
        ),
        # Redis 6.2+
        InfoField(
            "total_error_replies",
            _redis_counter("redis_error_replies_total", "Error replies sent to clients."),
        ),
        # Redis 7+
        InfoField(
            "evicted_clients",
            _redis_counter("redis_evicted_clients_total", "Clients evicted (maxmemory-clients)."),
        ),
        # the Go exporter's names (gauges there, counters in truth: kept as gauges so
        # the same queries work)
        InfoField(
            "sync_full",
            _redis_gauge("redis_replica_resyncs_full", "Full resyncs served to replicas."),
        ),
        InfoField(
            "sync_partial_ok",
            _redis_gauge("redis_replica_partial_resync_accepted", "Partial resyncs accepted."),
        ),
        InfoField(
            "sync_partial_err",
            _redis_gauge("redis_replica_partial_resync_denied", "Partial resyncs denied."),
        ),
    ),
    "replication": (
        InfoField(
            "connected_slaves", _redis_gauge("redis_connected_slaves", "Connected replicas.")
        ),
        InfoField(
            "master_repl_offset",
            _redis_gauge("redis_master_repl_offset", "Replication offset of this server."),
        ),
        InfoField(
            "second_repl_offset",
            _redis_gauge("redis_second_repl_offset", "Offset up to which the old replid is valid."),
        ),
        InfoField(
            "repl_backlog_size",
            _redis_gauge("redis_replication_backlog_bytes", "Size of the replication backlog."),
        ),
        InfoField(
            "repl_backlog_active",
            _redis_gauge("redis_repl_backlog_is_active", "1 while the backlog is kept."),
        ),
        InfoField(
            "repl_backlog_first_byte_offset",
            _redis_gauge("redis_repl_backlog_first_byte_offset", "First offset in the backlog."),
        ),
        InfoField(
            "repl_backlog_histlen",
            _redis_gauge("redis_repl_backlog_history_bytes", "Bytes of data in the backlog."),
        ),
        # replicas only
        InfoField(
            "slave_priority",
            _redis_gauge("redis_slave_priority", "Replica priority for promotion (0: never)."),
        ),
        InfoField(
            "slave_expires_tracked_keys",
            _redis_gauge("redis_slave_expires_tracked_keys", "Keys a writable replica expires."),
        ),
    ),
    "cpu": (
        InfoField(
            "used_cpu_sys", _redis_counter("redis_cpu_sys_seconds_total", "System CPU time.")
        ),
        InfoField(
            "used_cpu_user", _redis_counter("redis_cpu_user_seconds_total", "User CPU time.")
        ),
        InfoField(
            "used_cpu_sys_children",
            _redis_counter("redis_cpu_sys_children_seconds_total", "System CPU of children."),
        ),
        InfoField(
            "used_cpu_user_children",
            _redis_counter("redis_cpu_user_children_seconds_total", "User CPU of children."),
        ),
        # Redis 7+
        InfoField(
            "used_cpu_sys_main_thread",
            _redis_counter("redis_cpu_sys_main_thread_seconds_total", "System CPU, main thread."),
        ),
        InfoField(
            "used_cpu_user_main_thread",
            _redis_counter("redis_cpu_user_main_thread_seconds_total", "User CPU, main thread."),
        ),
    ),
    "cluster": (
        InfoField("cluster_enabled", _redis_gauge("redis_cluster_enabled", "1 in cluster mode.")),
    ),
    # a Sentinel's INFO (redis_mode:sentinel); per-master lines: REDIS_SENTINEL_MASTER_*
    "sentinel": (
        InfoField(
            "sentinel_masters",
            _redis_gauge("redis_sentinel_masters", "Masters this Sentinel watches."),
        ),
        InfoField("sentinel_tilt", _redis_gauge("redis_sentinel_tilt", "1 while in TILT mode.")),
        InfoField(
            "sentinel_running_scripts",
            _redis_gauge("redis_sentinel_running_scripts", "Scripts running now."),
        ),
        InfoField(
            "sentinel_scripts_queue_length",
            _redis_gauge("redis_sentinel_scripts_queue_length", "Scripts waiting to run."),
        ),
        InfoField(
            "sentinel_simulate_failure_flags",
            _redis_gauge("redis_sentinel_simulate_failure_flags", "Simulated failure flags."),
        ),
    ),
}

#: ``CONFIG GET max*`` values operators alert on (the policy is INFO's maxmemory_policy,
#: a label of redis_instance_info)
REDIS_CONFIG_FIELDS: tuple[InfoField, ...] = (
    InfoField(
        "maxclients",
        _redis_gauge("redis_config_maxclients", "maxclients setting (CONFIG GET)."),
    ),
    InfoField(
        "maxmemory",
        _redis_gauge("redis_config_maxmemory", "maxmemory setting in bytes (CONFIG GET)."),
    ),
)

# --- replication with labels (as the Go exporter labels them) ---------------------
_MASTER_LINK = ("instance", "master_host", "master_port")
#: a replica's view of its master (INFO replication of a replica)
REDIS_MASTER_LINK_UP = MetricSpec(
    "redis_master_link_up", "gauge", "1 if the replica's link to its master is up.", _MASTER_LINK
)
REDIS_MASTER_LAST_IO = MetricSpec(
    "redis_master_last_io_seconds_ago",
    "gauge",
    "Seconds since the replica last heard from its master (-1 when unlinked).",
    _MASTER_LINK,
)
REDIS_MASTER_SYNC_IN_PROGRESS = MetricSpec(
    "redis_master_sync_in_progress", "gauge", "1 while the replica syncs.", _MASTER_LINK
)
REDIS_SLAVE_REPL_OFFSET = MetricSpec(
    "redis_slave_repl_offset", "gauge", "Replication offset the replica has.", _MASTER_LINK
)
REDIS_SLAVE_INFO = MetricSpec(
    "redis_slave_info",
    "gauge",
    "A replica's master and whether it is read-only (always 1).",
    (*_MASTER_LINK, "read_only"),
)
#: replica fields of INFO replication -> the families above
REDIS_REPLICA_FIELDS: tuple[InfoField, ...] = (
    InfoField("master_link_status", REDIS_MASTER_LINK_UP),  # "up" -> 1
    InfoField("master_last_io_seconds_ago", REDIS_MASTER_LAST_IO),
    InfoField("master_sync_in_progress", REDIS_MASTER_SYNC_IN_PROGRESS),
    InfoField("slave_repl_offset", REDIS_SLAVE_REPL_OFFSET),
)
_CONNECTED_SLAVE = ("instance", "slave_ip", "slave_port", "slave_state")
#: a master's view of each replica (``slaveN:ip=..,port=..,state=..,offset=..,lag=..``)
REDIS_CONNECTED_SLAVE_OFFSET = MetricSpec(
    "redis_connected_slave_offset_bytes",
    "gauge",
    "Replication offset each replica acknowledged.",
    _CONNECTED_SLAVE,
)
REDIS_CONNECTED_SLAVE_LAG = MetricSpec(
    "redis_connected_slave_lag_seconds",
    "gauge",
    "Seconds since each replica last acknowledged.",
    _CONNECTED_SLAVE,
)

# --- Sentinel's view of its masters (exporter/collectors/sentinel.py) ---------------
_SENTINEL_MASTER = ("instance", "master_name", "master_address")
REDIS_SENTINEL_MASTER_STATUS = MetricSpec(
    "redis_sentinel_master_status",
    "gauge",
    "1 if Sentinel sees the master ok; its status word is a label.",
    (*_SENTINEL_MASTER, "master_status"),
)
REDIS_SENTINEL_MASTER_SLAVES = MetricSpec(
    "redis_sentinel_master_slaves", "gauge", "Replicas Sentinel knows.", _SENTINEL_MASTER
)
REDIS_SENTINEL_MASTER_SENTINELS = MetricSpec(
    "redis_sentinel_master_sentinels",
    "gauge",
    "Sentinels watching the master (this one included).",
    _SENTINEL_MASTER,
)
REDIS_SENTINEL_MASTER_OK_SLAVES = MetricSpec(
    "redis_sentinel_master_ok_slaves",
    "gauge",
    "Replicas not flagged down (SENTINEL REPLICAS).",
    _SENTINEL_MASTER,
)
REDIS_SENTINEL_MASTER_OK_SENTINELS = MetricSpec(
    "redis_sentinel_master_ok_sentinels",
    "gauge",
    "Sentinels not flagged down, this one included (SENTINEL SENTINELS).",
    _SENTINEL_MASTER,
)
#: ``SENTINEL MASTERS`` field -> family (ms values converted: names in base units
#: where the Go exporter's carry milliseconds)
REDIS_SENTINEL_MASTER_FIELDS: tuple[InfoField, ...] = (
    InfoField(
        "quorum",
        MetricSpec(
            "redis_sentinel_master_setting_ckquorum",
            "gauge",
            "Sentinels that must agree the master is down.",
            _SENTINEL_MASTER,
        ),
    ),
    InfoField(
        "failover-timeout",
        MetricSpec(
            "redis_sentinel_master_setting_failover_timeout_seconds",
            "gauge",
            "failover-timeout setting.",
            _SENTINEL_MASTER,
        ),
        "msec",
    ),
    InfoField(
        "parallel-syncs",
        MetricSpec(
            "redis_sentinel_master_setting_parallel_syncs",
            "gauge",
            "Replicas reconfigured at once after a failover.",
            _SENTINEL_MASTER,
        ),
    ),
    InfoField(
        "down-after-milliseconds",
        MetricSpec(
            "redis_sentinel_master_setting_down_after_seconds",
            "gauge",
            "down-after-milliseconds setting, in seconds.",
            _SENTINEL_MASTER,
        ),
        "msec",
    ),
    InfoField(
        "config-epoch",
        MetricSpec(
            "redis_sentinel_master_config_epoch",
            "gauge",
            "Config epoch of the master (grows on each failover).",
            _SENTINEL_MASTER,
        ),
    ),
    InfoField(
        "last-ok-ping-reply",
        MetricSpec(
            "redis_sentinel_master_last_ok_ping_reply_seconds",
            "gauge",
            "Seconds since the master last answered a PING.",
            _SENTINEL_MASTER,
        ),
        "msec",
    ),
)
REDIS_SENTINEL_METRICS: tuple[MetricSpec, ...] = (
    REDIS_SENTINEL_MASTER_STATUS,
    REDIS_SENTINEL_MASTER_SLAVES,
    REDIS_SENTINEL_MASTER_SENTINELS,
    REDIS_SENTINEL_MASTER_OK_SLAVES,
    REDIS_SENTINEL_MASTER_OK_SENTINELS,
    *(f.spec for f in REDIS_SENTINEL_MASTER_FIELDS),
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
#: commandstats record key -> metric (rejected/failed calls: Redis 7+)
REDIS_COMMANDSTATS: tuple[InfoField, ...] = (
    InfoField("calls", REDIS_COMMANDS),
    InfoField("usec", REDIS_COMMANDS_DURATION, "usec"),
    InfoField(
        "rejected_calls",
        MetricSpec(
            "redis_commands_rejected_calls_total",
            "counter",
            "Calls refused before running, per command (Redis 7+).",
            ("instance", "cmd"),
        ),
    ),
    InfoField(
        "failed_calls",
        MetricSpec(
            "redis_commands_failed_calls_total",
            "counter",
            "Calls that ran and failed, per command (Redis 7+).",
            ("instance", "cmd"),
        ),
    ),
)
#: a summary (as the Go exporter's redis_latency_percentiles_usec): quantile samples
#: from latencystats, _count and _sum from commandstats calls and time
REDIS_LATENCY_PERCENTILES = MetricSpec(
    "redis_latency_percentiles_seconds",
    "summary",
    "Server-side command latency percentiles (INFO latencystats, Redis 7+).",
    ("instance", "cmd", "quantile"),
)
REDIS_ERRORS = MetricSpec(
    "redis_errors_total",
    "counter",
    "Error replies by error prefix (INFO errorstats, Redis 7+).",
    ("instance", "err"),
)
#: keyspace record key -> metric, per database (``db`` is bounded by Redis' databases)
REDIS_KEYSPACE: tuple[InfoField, ...] = (
    InfoField(
        "keys", MetricSpec("redis_db_keys", "gauge", "Keys per database.", ("instance", "db"))
    ),
    InfoField(
        "expires",
        MetricSpec(
            "redis_db_keys_expiring", "gauge", "Keys with a TTL per database.", ("instance", "db")
        ),
    ),
    InfoField(
        "avg_ttl",
        MetricSpec(
            "redis_db_avg_ttl_seconds", "gauge", "Average TTL per database.", ("instance", "db")
        ),
        "msec",
    ),
)
#: INFO server/replication/memory strings carried as labels of a constant-1 gauge
#: (tcp_port as the Go exporter's: which node is master behind Sentinel or in a cluster)
REDIS_INSTANCE_INFO_FIELDS = ("redis_version", "redis_mode", "role", "maxmemory_policy", "tcp_port")
REDIS_INSTANCE_INFO = MetricSpec(
    "redis_instance_info",
    "gauge",
    "Version, mode, role, eviction policy and port of the Redis server (always 1).",
    ("instance", *REDIS_INSTANCE_INFO_FIELDS),
)

#: every redis_* family the INFO collector emits (its describe(), the metric reference)
REDIS_METRICS: tuple[MetricSpec, ...] = (
    REDIS_UP,
    *(f.spec for fields in REDIS_INFO_FIELDS.values() for f in fields),
    *(f.spec for f in REDIS_COMMANDSTATS),
    REDIS_LATENCY_PERCENTILES,
    REDIS_ERRORS,
    *(f.spec for f in REDIS_KEYSPACE),
    REDIS_INSTANCE_INFO,
    *(f.spec for f in REDIS_REPLICA_FIELDS),
    REDIS_SLAVE_INFO,
    REDIS_CONNECTED_SLAVE_OFFSET,
    REDIS_CONNECTED_SLAVE_LAG,
    *(f.spec for f in REDIS_CONFIG_FIELDS),
    *REDIS_SENTINEL_METRICS,
)
#: values of ``error`` on cache_exporter_last_scrape_error: a class, never a message
SCRAPE_ERROR_CLASSES = ("connection", "timeout", "auth", "response", "parse", "other")

# --- the PostgreSQL buffer-cache layer (exporter/collectors/postgres.py) -----------

#: ``type`` of cache_hits_total/cache_misses_total{layer="postgres"}: the buffer cache
#: of the whole cluster (summed over databases), a fixed value so no database name
#: ever becomes a label value
TYPE_POSTGRES_BUFFER = "buffer"
POSTGRES_UP = MetricSpec(
    "cache_exporter_postgres_up", "gauge", "1 if the last read of pg_stat_database succeeded."
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


# --- collector health and bounded INFO output ------------------------------------------
# (exporter/collectors/health.py for the background workers, redis_info.py for INFO)

#: values of ``collector`` on the cache_exporter_collector_* families: the background workers
COLLECTOR_KEYSPACE_SAMPLER = "keyspace_sampler"
COLLECTOR_EVICTIONS = "evictions"
COLLECTOR_CDN_LOGS = "cdn_logs"
COLLECTORS = (COLLECTOR_KEYSPACE_SAMPLER, COLLECTOR_EVICTIONS, COLLECTOR_CDN_LOGS)
COLLECTOR_UP = MetricSpec(
    "cache_exporter_collector_up",
    "gauge",
    "1 while a background collector runs and nothing failed since its last success.",
    ("instance", "collector"),
)
COLLECTOR_RESTARTS = MetricSpec(
    "cache_exporter_collector_restarts_total",
    "counter",
    "Times a background collector's worker was restarted after an error.",
    ("instance", "collector"),
)
COLLECTOR_LAST_ERROR = MetricSpec(
    "cache_exporter_collector_last_error",
    "gauge",
    "1 while a background collector is failing; the error class (as on "
    "cache_exporter_last_scrape_error) is the label.",
    ("instance", "collector", "error"),
)
REDIS_CONFIG_UP = MetricSpec(
    "cache_exporter_redis_config_up",
    "gauge",
    "1 if CONFIG GET answered on the last scrape; 0 when it is renamed, disabled or "
    "refused (redis_config_* are then absent, the scrape goes on).",
    ("instance",),
)
INFO_FIELDS_SKIPPED = MetricSpec(
    "cache_exporter_info_fields_skipped_total",
    "counter",
    "INFO fields (or records of a field) that did not parse and were skipped.",
    ("instance",),
)
SERIES_DROPPED = MetricSpec(
    "cache_exporter_series_dropped_total",
    "counter",
    "INFO-derived series left out, or folded into the family's overflow series, "
    "because the family reached its cap; family is the metric name.",
    ("instance", "family"),
)


# --- Redis Cluster and many /scrape targets (exporter/collectors/cluster.py, targets.py) ---
# CLUSTER INFO fields, read from every node whose INFO says cluster_enabled:1; names are
# the Go redis_exporter's (its cluster_* map), ``cluster_state`` ok -> 1.

REDIS_CLUSTER_INFO_FIELDS: tuple[InfoField, ...] = (
    InfoField(
        "cluster_state",
        _redis_gauge("redis_cluster_state", "1 if this node sees the cluster as ok."),
        "status",
    ),
    InfoField(
        "cluster_slots_assigned",
        _redis_gauge("redis_cluster_slots_assigned", "Slots bound to a node."),
    ),
    InfoField(
        "cluster_slots_ok", _redis_gauge("redis_cluster_slots_ok", "Slots of nodes that are up.")
    ),
    InfoField(
        "cluster_slots_pfail",
        _redis_gauge("redis_cluster_slots_pfail", "Slots of nodes this node suspects down."),
    ),
    InfoField(
        "cluster_slots_fail",
        _redis_gauge("redis_cluster_slots_fail", "Slots of nodes the cluster agrees are down."),
    ),
    InfoField(
        "cluster_known_nodes", _redis_gauge("redis_cluster_known_nodes", "Nodes this node knows.")
    ),
    InfoField(
        "cluster_size",
        _redis_gauge("redis_cluster_size", "Masters serving at least one slot."),
    ),
    InfoField(
        "cluster_current_epoch",
        _redis_gauge("redis_cluster_current_epoch", "The cluster's current epoch."),
    ),
    InfoField(
        "cluster_my_epoch", _redis_gauge("redis_cluster_my_epoch", "This node's config epoch.")
    ),
    InfoField(
        "cluster_stats_messages_sent",
        _redis_counter("redis_cluster_messages_sent_total", "Cluster-bus messages sent."),
    ),
    InfoField(
        "cluster_stats_messages_received",
        _redis_counter("redis_cluster_messages_received_total", "Cluster-bus messages received."),
    ),
)
#: roles of a cluster node as discovered (CLUSTER NODES' master / slave flags)
CLUSTER_ROLES = ("master", "replica")
#: what CLUSTER NODES says of a node's health: ok, suspected (pfail) or agreed down (fail)
CLUSTER_NODE_STATES = ("ok", "pfail", "fail")
REDIS_CLUSTER_NODE = MetricSpec(
    "redis_cluster_node_info",
    "gauge",
    "One series per discovered cluster node (always 1): its role, its master's address "
    "(replicas; empty for masters) and its state as CLUSTER NODES reports it.",
    ("instance", "role", "master_instance", "state"),
)
CLUSTER_NODES = MetricSpec(
    "cache_exporter_cluster_nodes",
    "gauge",
    "Cluster nodes discovered, per role (instance is the seed address).",
    ("instance", "role"),
)
CLUSTER_DISCOVERIES = MetricSpec(
    "cache_exporter_cluster_discoveries_total",
    "counter",
    "Reads of the cluster's topology (CLUSTER NODES), periodic or after a failure or a "
    "role change; result is ok or error.",
    ("instance", "result"),
)
CLUSTER_NODES_DROPPED = MetricSpec(
    "cache_exporter_cluster_nodes_dropped",
    "gauge",
    "Nodes of the last topology left unscraped: over the node cap, or lines of CLUSTER "
    "NODES that did not parse.",
    ("instance",),
)
SCRAPE_TARGETS_LIVE = MetricSpec(
    "cache_exporter_scrape_targets_live",
    "gauge",
    "/scrape targets with a running keyspace sampler and eviction tracker.",
)
SCRAPE_TARGETS_MAX = MetricSpec(
    "cache_exporter_scrape_targets_max",
    "gauge",
    "Most /scrape targets with background workers at once (--scrape-max-targets).",
)
SCRAPE_TARGETS_REFUSED = MetricSpec(
    "cache_exporter_scrape_targets_refused_total",
    "counter",
    "/scrape requests served without per-type families because every target slot was "
    "taken (their INFO view is still served).",
)
SCRAPE_TARGETS_EXPIRED = MetricSpec(
    "cache_exporter_scrape_targets_expired_total",
    "counter",
    "/scrape targets whose background workers were stopped after going unscraped for "
    "--scrape-target-idle seconds.",
)
SCRAPE_TARGET_WORKERS = MetricSpec(
    "cache_exporter_scrape_target_workers",
    "gauge",
    "In a /scrape response: 1 if this target has background workers (per-type "
    "families), 0 if the target cap refused them.",
    ("instance",),
)
CLUSTER_METRICS: tuple[MetricSpec, ...] = (
    *(f.spec for f in REDIS_CLUSTER_INFO_FIELDS),
    REDIS_CLUSTER_NODE,
    CLUSTER_NODES,
    CLUSTER_DISCOVERIES,
    CLUSTER_NODES_DROPPED,
)
SCRAPE_TARGET_METRICS: tuple[MetricSpec, ...] = (
    SCRAPE_TARGETS_LIVE,
    SCRAPE_TARGETS_MAX,
    SCRAPE_TARGETS_REFUSED,
    SCRAPE_TARGETS_EXPIRED,
    SCRAPE_TARGET_WORKERS,
)
