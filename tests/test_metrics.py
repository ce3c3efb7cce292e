"""The metric contract: names, labels and buckets as ARCHITECTURE.md states them."""

from __future__ import annotations

import ast
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from exporter import metrics
from exporter.client.families import client_metrics


def test_latency_buckets_include_ten_ms_exactly_and_are_fine_around_it() -> None:
    buckets = metrics.LATENCY_BUCKETS
    assert 0.01 in buckets
    assert list(buckets) == sorted(buckets)
    i = buckets.index(0.01)
    assert buckets[i] - buckets[i - 1] <= 0.001 + 1e-12
    assert buckets[i + 1] - buckets[i] <= 0.002 + 1e-12


def test_metrics_is_a_leaf_that_imports_nothing_from_the_package() -> None:
    """Names, labels, buckets and INFO tables only: anything of ``exporter`` it
    imported would be loaded by every generator, and could import it back."""
    tree = ast.parse(Path(metrics.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
    assert not {name for name in imported if name.split(".")[0] == "exporter"}
    assert imported <= {"__future__", "dataclasses", "typing", "prometheus_client.core"}


def test_client_metrics_register_once_per_registry_with_contract_names() -> None:
    registry = CollectorRegistry()
    first = client_metrics(registry)
    assert client_metrics(registry) is first
    first.hits.labels(layer="redis", type="session").inc()
    first.latency.labels(layer="redis", operation="get").observe(0.003)
    text = generate_latest(registry).decode()
    assert 'cache_hits_total{layer="redis",type="session"} 1.0' in text
    assert 'cache_latency_seconds_bucket{layer="redis",le="0.01",operation="get"} 1.0' in text
    assert client_metrics(CollectorRegistry()) is not first


def test_contract_metric_kinds_and_labels() -> None:
    assert metrics.CACHE_HITS.labels == ("layer", "type")
    assert metrics.CACHE_LATENCY.labels == ("layer", "operation")
    assert metrics.CACHE_ERRORS.labels == ("layer", "operation", "error")
    assert metrics.CACHE_EVICTIONS.labels == ("layer", "type", "reason")
    assert metrics.CACHE_HITS.family == "cache_hits"
    assert metrics.CACHE_KEYS.family == "cache_keys"
    for spec in (
        metrics.CACHE_HITS,
        metrics.CACHE_MISSES,
        metrics.CACHE_ERRORS,
        metrics.CACHE_EVICTIONS,
    ):
        assert spec.kind == "counter" and spec.name.endswith("_total")
