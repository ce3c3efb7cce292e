"""Lock-free per-thread counters and histograms: same exposition as prometheus-client,
exact totals under concurrent threads and scrapes, no growth with thread churn."""

from __future__ import annotations

import random
import threading

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from exporter.client.thread_local_metrics import (
    HistogramChild,
    ThreadLocalCounter,
    ThreadLocalHistogram,
)
from exporter.metrics import LATENCY_BUCKETS

# on, just past and just before bucket bounds, far beyond the last (+Inf) and zero
OBSERVATIONS = (0.0, 0.0001, 0.00010001, 0.0099999, 0.01, 0.0100001, 0.003, 0.2, 7.5, 1e9)


def without_created(text: str) -> list[str]:
    """prometheus-client adds ``*_created`` series; the thread-local metrics do not."""
    return [line for line in text.splitlines() if "_created" not in line]


def record(counter: object, histogram: object) -> None:
    c: Counter = counter  # type: ignore[assignment]
    h: Histogram = histogram  # type: ignore[assignment]
    c.labels("redis", "session").inc()
    c.labels(layer="redis", type="session").inc(2.5)
    c.labels("redis", "user").inc(0)
    for value in OBSERVATIONS:
        h.labels("redis", "get").observe(value)
    h.labels(operation="set", layer="redis").observe(0.004)


@pytest.mark.parametrize("exposition", [generate_latest, generate_openmetrics])
def test_exposition_matches_prometheus_client(exposition: object) -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    record(
        ThreadLocalCounter("hits", "Hits.", ("layer", "type"), registry=ours),
        ThreadLocalHistogram(
            "lat", "Latency.", ("layer", "operation"), buckets=LATENCY_BUCKETS, registry=ours
        ),
    )
    record(
        Counter("hits", "Hits.", ("layer", "type"), registry=theirs),
        Histogram(
            "lat", "Latency.", ("layer", "operation"), buckets=LATENCY_BUCKETS, registry=theirs
        ),
    )
    render = exposition  # type: ignore[assignment]
    assert without_created(render(ours).decode()) == without_created(render(theirs).decode())  # type: ignore[operator]


def test_sample_values_as_a_registry_reads_them() -> None:
    registry = CollectorRegistry()
    hist = ThreadLocalHistogram("lat", "L.", ("op",), buckets=(0.01, 0.1), registry=registry)
    child = hist.labels("get")
    for value in (0.005, 0.01, 0.05, 3.0):
        child.observe(value)
    get = registry.get_sample_value
    assert get("lat_bucket", {"op": "get", "le": "0.01"}) == 2
    assert get("lat_bucket", {"op": "get", "le": "0.1"}) == 3
    assert get("lat_bucket", {"op": "get", "le": "+Inf"}) == 4
    assert get("lat_count", {"op": "get"}) == 4
    assert get("lat_sum", {"op": "get"}) == pytest.approx(3.065)


def test_concurrent_threads_and_scrapes_count_exactly_and_never_go_back() -> None:
    registry = CollectorRegistry()
    counter = ThreadLocalCounter("ops", "Ops.", ("kind",), registry=registry)
    hist = ThreadLocalHistogram("lat", "L.", ("kind",), buckets=LATENCY_BUCKETS, registry=registry)
    threads, per_thread = 8, 20_000
    done = threading.Event()
    seen: list[float] = []

    def work() -> None:
        c, h = counter.labels("a"), hist.labels("a")
        for _ in range(per_thread):
            c.inc()
            h.observe(0.002)

    def scrape() -> None:
        while not done.is_set():
            value = registry.get_sample_value("ops_total", {"kind": "a"})
            seen.append(0.0 if value is None else value)

    scraper = threading.Thread(target=scrape)
    scraper.start()
    workers = [threading.Thread(target=work) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    done.set()
    scraper.join()

    total = threads * per_thread
    assert registry.get_sample_value("ops_total", {"kind": "a"}) == total
    assert registry.get_sample_value("lat_count", {"kind": "a"}) == total
    assert registry.get_sample_value("lat_bucket", {"kind": "a", "le": "0.002"}) == total
    assert len(seen) > 1
    assert seen == sorted(seen), "a scrape saw a counter go backwards"


def test_ended_threads_are_folded_in_and_not_kept() -> None:
    registry = CollectorRegistry()
    child = ThreadLocalCounter("ops", "Ops.", ("kind",), registry=registry).labels("a")
    for _ in range(300):  # one short-lived thread per "request"
        t = threading.Thread(target=child.inc)
        t.start()
        t.join()
    assert child.get() == 300
    assert child.cells.tracked_threads() <= 2  # ended threads' cells were retired
    child.inc()  # this thread's own cell still counts
    assert registry.get_sample_value("ops_total", {"kind": "a"}) == 301


def test_same_labels_give_the_same_child_and_bad_labels_are_refused() -> None:
    counter = ThreadLocalCounter("ops", "Ops.", ("layer", "type"), registry=None)
    assert counter.labels("redis", "user") is counter.labels(type="user", layer="redis")
    with pytest.raises(ValueError, match="label count"):
        counter.labels("redis")
    with pytest.raises(ValueError, match="label names"):
        counter.labels(layer="redis", kind="user")
    with pytest.raises(ValueError, match="both"):
        counter.labels("redis", type="user")
    with pytest.raises(ValueError, match="non-negative"):
        counter.labels("redis", "user").inc(-1)


def test_registering_a_taken_name_is_refused_like_prometheus_client() -> None:
    registry = CollectorRegistry()
    Counter("hits", "Hits.", ("type",), registry=registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        ThreadLocalCounter("hits", "Hits.", ("type",), registry=registry)


def test_sum_never_goes_back_when_an_ended_threads_cell_is_folded_in() -> None:
    """Folding an ended thread's cell into the retired totals adds the same floats in
    another order, which can round lower; Prometheus would read the drop as a reset."""
    rng = random.Random(1)

    def values(n: int) -> list[float]:
        return [rng.uniform(5e-5, 3e-3) for _ in range(n)]

    for _ in range(200):
        registry = CollectorRegistry()
        buckets = LATENCY_BUCKETS
        child = ThreadLocalHistogram("lat", "L.", ("op",), buckets, registry).labels("get")
        child.observe_many(values(50))
        ended = threading.Thread(target=child.observe_many, args=(values(30),))
        ended.start()
        ended.join()
        registry.get_sample_value("lat_sum", {"op": "get"})  # folds the ended thread in
        recorded, finish = threading.Event(), threading.Event()

        def record_then_end(
            child: HistogramChild, recorded: threading.Event, finish: threading.Event
        ) -> None:
            child.observe_many(values(40))
            recorded.set()
            finish.wait()

        thread = threading.Thread(target=record_then_end, args=(child, recorded, finish))
        thread.start()
        recorded.wait()
        before = registry.get_sample_value("lat_sum", {"op": "get"})
        finish.set()
        thread.join()
        after = registry.get_sample_value("lat_sum", {"op": "get"})  # nothing observed since
        assert before is not None and after is not None
        assert after >= before


def test_values_read_back_as_floats_and_unsorted_buckets_are_refused() -> None:
    registry = CollectorRegistry()
    ThreadLocalCounter("ops", "Ops.", ("kind",), registry=registry).labels("a").inc()
    value = registry.get_sample_value("ops_total", {"kind": "a"})
    assert value == 1.0 and isinstance(value, float)
    with pytest.raises(ValueError, match="sorted"):
        ThreadLocalHistogram("lat", "L.", ("op",), buckets=(0.1, 0.01), registry=None)
    with pytest.raises(ValueError, match="sorted"):
        Histogram("lat", "L.", ("op",), buckets=(0.1, 0.01), registry=None)


def test_observe_many_counts_as_observing_each() -> None:
    one, many = CollectorRegistry(), CollectorRegistry()
    bounds = LATENCY_BUCKETS
    single = ThreadLocalHistogram("lat", "L.", ("op",), bounds, one).labels("get")
    bulk = ThreadLocalHistogram("lat", "L.", ("op",), bounds, many).labels("get")
    values = [*OBSERVATIONS, *LATENCY_BUCKETS, *(b * 1.0000001 for b in LATENCY_BUCKETS)]
    for value in values:
        single.observe(value)
    bulk.observe_many(values)
    bulk.observe_many([])
    assert single.buckets()[0] == bulk.buckets()[0]
    assert single.buckets()[1] == pytest.approx(bulk.buckets()[1])
