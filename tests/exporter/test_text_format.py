"""exporter.text_format writes the same bytes as prometheus-client's generate_latest."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Enum,
    Gauge,
    Histogram,
    Info,
    Summary,
)
from prometheus_client import generate_latest as reference
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from exporter import text_format

#: label values as outside data may send them: quotes, backslashes, newlines, UTF-8
HOSTILE = ['a"b', "back\\slash", "new\nline", "ünïcødé ☃", "", "}{,=", "\\n literal"]


class _Raw:
    """A collector yielding hand-built families (unknown type, timestamps, odd names)."""

    def collect(self) -> list[Metric]:
        odd = Metric("odd.name-with:colon", "help with \\ and\nnewline", "unknown")
        odd.add_sample("odd.name-with:colon", {"la.bel": "v", "ok": "w"}, 1.5, timestamp=12.25)
        gauge = GaugeMetricFamily("g_nan", "special values", labels=["k"])
        for i, v in enumerate([float("nan"), float("inf"), float("-inf"), 1e-9, 1e21, -0.0]):
            gauge.add_metric([str(i)], v)
        gh = GaugeHistogramMetricFamily("gh", "gauge histogram", buckets=[("1", 2), ("+Inf", 3)],
                                        gsum_value=4.0)  # fmt: skip
        return [odd, gauge, gh]


def _registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    counter = Counter("requests", "Requests.", ["path", "code"], registry=registry)
    hist = Histogram("latency_seconds", "Latency.", ["op"], registry=registry)
    Summary("sizes_bytes", "Sizes.", registry=registry).observe(3)
    Info("build", "Build.", registry=registry).info({"version": 'v"1\\'})
    Enum("state", "State.", states=["a", "b"], registry=registry).state("b")
    Gauge("plain", "No labels.", registry=registry).set(2.5)
    for value in HOSTILE:
        counter.labels(path=value, code="200").inc()
        hist.labels(op=value).observe(0.3)
    registry.register(_Raw())  # type: ignore[arg-type]
    return registry


def test_same_bytes_as_prometheus_client() -> None:
    registry = _registry()
    ours = text_format.generate_latest(registry)
    assert ours == reference(registry)
    assert b'path="a\\"b"' in ours and b'path="new\\nline"' in ours


def test_negotiation_keeps_openmetrics_and_picks_ours_by_default() -> None:
    encoder, content_type = text_format.choose_encoder("")
    assert encoder is text_format.generate_latest
    assert content_type == CONTENT_TYPE_PLAIN_0_0_4
    openmetrics = "application/openmetrics-text; version=1.0.0"
    encoder, content_type = text_format.choose_encoder(openmetrics)
    assert encoder is not text_format.generate_latest
    assert content_type.startswith("application/openmetrics-text")
    assert encoder(_registry()).endswith(b"# EOF\n")
