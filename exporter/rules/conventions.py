"""Every rule, group, record and alert name the generator emits, in one place.

Dashboards, promtool tests and runbooks look names up here, so a rename is one
edit.  Window-dependent record names use the *nominal* window (``rate5m``): the
``fast`` profile shortens the ranges but keeps the names.
"""

from __future__ import annotations

from datetime import timedelta

from exporter import metrics as m
from exporter.slo import format_duration

# --- groups -------------------------------------------------------------------

GROUP_SLI = "cache-slo-sli-recordings"
#: the 5m ratios and every window from 30m on, from the 5m recordings of GROUP_SLI
GROUP_SLI_LONG = "cache-slo-sli-from-recordings"
GROUP_BUDGET = "cache-slo-error-budget"
GROUP_ADR = "cache-slo-adr-alerts"
GROUP_BURN = "cache-slo-burn-rate-alerts"
GROUP_OPERATIONAL = "cache-operational-alerts"
#: replication, Redis Cluster, Sentinel, clients and persistence (exporter/rules/topology.py)
GROUP_TOPOLOGY = "cache-topology-alerts"

# --- files (under alerts/) -------------------------------------------------------

FILE_RECORDINGS = "cache-slo-recordings.rules.yml"
FILE_SLO_ALERTS = "cache-slo-alerts.rules.yml"
FILE_OPERATIONAL = "cache-operational.rules.yml"
FILE_TOPOLOGY = "cache-topology.rules.yml"

# --- alerts ---------------------------------------------------------------------

ALERT_LOW_HIT_RATE = "LowCacheHitRate"
ALERT_HIGH_LATENCY = "HighCacheLatency"
ALERT_HIT_RATE_BURN = "CacheHitRateBudgetBurn"
ALERT_LATENCY_BURN = "CacheLatencyBudgetBurn"
ALERT_REDIS_DOWN = "RedisDown"
ALERT_EXPORTER_DOWN = "CacheExporterDown"
ALERT_METRICS_ABSENT = "CacheMetricsAbsent"
ALERT_MEMORY_NEAR_MAX = "RedisMemoryNearMax"
ALERT_EVICTION_SURGE = "CacheEvictionSurge"
ALERT_CLIENT_ERRORS = "CacheClientErrors"
ALERT_SCRAPE_ERRORS = "CacheExporterScrapeErrors"
ALERT_COLLECTOR_DOWN = "CacheExporterCollectorDown"
ALERT_REPLICA_LINK_DOWN = "RedisReplicaLinkDown"
ALERT_REPLICATION_LAG = "RedisReplicationLag"
ALERT_CLUSTER_STATE_FAIL = "RedisClusterStateFail"
ALERT_CLUSTER_SLOTS_FAIL = "RedisClusterSlotsFail"
ALERT_CLUSTER_SLOTS_PFAIL = "RedisClusterSlotsPfail"
ALERT_SENTINEL_MASTER_DOWN = "RedisSentinelMasterDown"
ALERT_SENTINEL_QUORUM = "RedisSentinelQuorumAtRisk"
ALERT_SENTINEL_NO_REPLICA = "RedisSentinelNoHealthyReplica"
ALERT_CLIENTS_NEAR_MAX = "RedisClientsNearMax"
ALERT_RDB_SAVE_FAILED = "RedisRdbSaveFailed"
ALERT_AOF_WRITE_FAILED = "RedisAofWriteFailed"
ALERT_AOF_REWRITE_FAILED = "RedisAofRewriteFailed"
#: the topology group's alerts, in the order the group lists them
TOPOLOGY_ALERTS = (
    ALERT_REPLICA_LINK_DOWN,
    ALERT_REPLICATION_LAG,
    ALERT_CLUSTER_STATE_FAIL,
    ALERT_CLUSTER_SLOTS_FAIL,
    ALERT_CLUSTER_SLOTS_PFAIL,
    ALERT_SENTINEL_MASTER_DOWN,
    ALERT_SENTINEL_QUORUM,
    ALERT_SENTINEL_NO_REPLICA,
    ALERT_CLIENTS_NEAR_MAX,
    ALERT_RDB_SAVE_FAILED,
    ALERT_AOF_WRITE_FAILED,
    ALERT_AOF_REWRITE_FAILED,
)
#: the API objective's burn-rate alert (ADR-004: API p95 < 200 ms)
ALERT_API_LATENCY_BURN = "ApiLatencyBudgetBurn"
#: responses breaking their path class's Cache-Control policy (the browser layer)
ALERT_HTTP_POLICY_VIOLATIONS = "CacheHttpPolicyViolations"

ALL_ALERTS = (
    ALERT_LOW_HIT_RATE,
    ALERT_HIGH_LATENCY,
    ALERT_HIT_RATE_BURN,
    ALERT_LATENCY_BURN,
    ALERT_API_LATENCY_BURN,
    ALERT_REDIS_DOWN,
    ALERT_EXPORTER_DOWN,
    ALERT_METRICS_ABSENT,
    ALERT_MEMORY_NEAR_MAX,
    ALERT_EVICTION_SURGE,
    ALERT_CLIENT_ERRORS,
    ALERT_SCRAPE_ERRORS,
    ALERT_COLLECTOR_DOWN,
    *TOPOLOGY_ALERTS,
    ALERT_HTTP_POLICY_VIOLATIONS,
)

# --- label values -----------------------------------------------------------------

SEVERITY_PAGE = "page"
SEVERITY_TICKET = "ticket"
SLO_HIT_RATE = "cache-hit-rate"
SLO_LATENCY = "cache-latency"
#: hit-rate objectives of the CDN, browser and PostgreSQL layers (their series carry ``layer``)
SLO_LAYER_HIT_RATE = "cache-layer-hit-rate"
SLO_API_LATENCY = "api-latency"
#: ``error`` of a call the client's open circuit breaker skipped: an attempt that
#: never reached Redis, so it is in ``cache_errors_total`` but not in the latency histogram
ERROR_CIRCUIT_OPEN = "circuit_open"
assert ERROR_CIRCUIT_OPEN in m.ERROR_CLASSES

# --- recorded series ------------------------------------------------------------------

#: error budget left over the SLO window (1 = untouched, 0 = spent, < 0 = overspent)
RECORD_BUDGET_REMAINING = "cache_slo:error_budget_remaining:ratio"


def window_name(window: timedelta) -> str:
    """The window as it appears in record names and labels (``5m``, ``30d``)."""
    return format_duration(window)


def record_hits(window: timedelta) -> str:
    """Hits per second by ``type``, plus ``type="all"`` (the long windows' numerator)."""
    return f"cache_type:cache_hits:rate{window_name(window)}"


def record_latency_good_calls(window: timedelta) -> str:
    """Calls per second of the latency SLO's operation within its threshold."""
    return f"cache_operation:cache_latency_good:rate{window_name(window)}"


def record_reads(window: timedelta) -> str:
    """Reads per second (hits + misses) by ``type``, plus ``type="all"``."""
    return f"cache_type:cache_reads:rate{window_name(window)}"


def record_hit_ratio(window: timedelta) -> str:
    """Hits / reads by ``type``, plus ``type="all"``."""
    return f"cache_type:cache_hit_ratio:rate{window_name(window)}"


def record_calls(window: timedelta) -> str:
    """Calls per second of the latency SLO's operation."""
    return f"cache_operation:cache_calls:rate{window_name(window)}"


def record_latency_good(window: timedelta) -> str:
    """Fraction of the operation's calls that finished within the SLO threshold."""
    return f"cache_operation:cache_latency_good_ratio:rate{window_name(window)}"


# --- the other layers and the API (their own names: the Redis ones above stay unchanged) ---


def record_layer_hits(window: timedelta) -> str:
    """Hits per second of a non-Redis layer, by ``layer`` and ``type`` (plus ``type="all"``)."""
    return f"cache_layer_type:cache_hits:rate{window_name(window)}"


def record_layer_reads(window: timedelta) -> str:
    """Reads per second of a non-Redis layer, by ``layer`` and ``type``."""
    return f"cache_layer_type:cache_reads:rate{window_name(window)}"


def record_layer_hit_ratio(window: timedelta) -> str:
    """Hits / reads of a non-Redis layer, by ``layer`` and ``type``."""
    return f"cache_layer_type:cache_hit_ratio:rate{window_name(window)}"


def record_api_requests(window: timedelta) -> str:
    """Requests per second the API objective counts."""
    return f"cache_api:api_requests:rate{window_name(window)}"


def record_api_good(window: timedelta) -> str:
    """Of those, requests per second within the API objective's threshold."""
    return f"cache_api:api_requests_good:rate{window_name(window)}"


def record_api_good_ratio(window: timedelta) -> str:
    """Fraction of the API objective's requests within its threshold."""
    return f"cache_api:api_latency_good_ratio:rate{window_name(window)}"
