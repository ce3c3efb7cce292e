"""Background workers never die quietly: any exception restarts them with capped
exponential backoff, each failure class is logged once per streak, and
``cache_exporter_collector_*`` say which worker is up, how often it restarted and
why it last failed.

Hostile Redis replies come from a fake RESP server (:mod:`tests.support.resp`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from exporter.collectors._redis import BackgroundThread
from exporter.collectors.evictions import EvictionTracker
from exporter.collectors.health import (
    Backoff,
    CollectorHealth,
    RepeatFilter,
    WorkerHealth,
)
from exporter.collectors.keyspace_sampler import MAX_DATABASES, KeyspaceSampler, largest_dbs
from exporter.metrics import (
    COLLECTOR_EVICTIONS,
    COLLECTOR_KEYSPACE_SAMPLER,
    COLLECTOR_LAST_ERROR,
    COLLECTOR_RESTARTS,
    COLLECTOR_UP,
)
from exporter.slo import SLO
from tests.exporter.conftest import promtool_check
from tests.support.resp import (
    BASIC_INFO,
    FakeRedis,
    array,
    basic_handler,
    bulk,
    info_reply,
    integer,
)


def _wait(predicate: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def _health(registry: CollectorRegistry, collector: str, instance: str = "t") -> dict[str, float]:
    labels = {"instance": instance, "collector": collector}
    out = {
        "up": registry.get_sample_value(COLLECTOR_UP.name, labels),
        "restarts": registry.get_sample_value(COLLECTOR_RESTARTS.name, labels),
    }
    for error in ("", "parse", "connection", "timeout", "other"):
        value = registry.get_sample_value(COLLECTOR_LAST_ERROR.name, {**labels, "error": error})
        if value is not None:
            out[f"error={error}"] = value
    return {k: v for k, v in out.items() if v is not None}


# --- the pieces ---------------------------------------------------------------------------


def test_backoff_doubles_up_to_the_cap_and_starts_over_after_a_healthy_stretch() -> None:
    backoff = Backoff(initial=0.1, maximum=30.0, healthy_stretch=30.0)
    delays = [backoff.delay() for _ in range(12)]
    assert delays[:4] == [0.1, 0.2, 0.4, 0.8]
    assert max(delays) == 30.0 and delays[-1] == 30.0
    assert backoff.delay(healthy_for=5.0) == 30.0  # a short success changes nothing
    assert backoff.delay(healthy_for=31.0) == 0.1


def test_repeat_filter_says_each_reason_once_per_streak_even_when_they_alternate() -> None:
    repeats = RepeatFilter()
    levels = [repeats.level(r) for r in ("a", "b", "a", "b", "a")]
    assert levels == [logging.WARNING, logging.WARNING] + [logging.DEBUG] * 3
    repeats.reset()
    assert repeats.level("a") == logging.WARNING


class _Flaky(BackgroundThread):
    """A worker whose attempts raise what ``errors`` hands out, then run healthily."""

    label = "flaky worker"
    failure = "attempt failed"

    def __init__(self, errors: list[Exception]) -> None:
        self.instance = "t"
        self.health = CollectorHealth("flaky", "t")
        self._stop = threading.Event()
        self._thread = None
        self._repeats = RepeatFilter()
        self.errors = errors
        self.attempts: list[float] = []

    def _new_backoff(self) -> Backoff:
        return Backoff(initial=0.01, maximum=0.08, healthy_stretch=60)

    def _loop(self) -> None:
        self.attempts.append(time.monotonic())
        if self.errors:
            raise self.errors.pop(0)
        self._succeeded()
        self._stop.wait()

    def _disconnect(self) -> None:
        pass


def test_any_exception_restarts_the_worker_with_backoff_and_one_line_per_class(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="exporter")
    errors: list[Exception] = [KeyError("run_id")] * 6 + [TypeError("bug")] * 2
    worker = _Flaky(list(errors))
    worker.start()
    try:
        _wait(lambda: len(worker.attempts) == len(errors) + 1)
        _wait(lambda: worker.health.last_error is None)
        assert worker.running
    finally:
        worker.stop()
    assert worker.health.restarts == len(errors)
    gaps = [b - a for a, b in zip(worker.attempts, worker.attempts[1:], strict=False)]
    assert gaps[0] < gaps[3]  # the delays grew ...
    assert max(gaps) < 0.5  # ... up to the cap
    lines = [r for r in caplog.records if "attempt failed" in r.getMessage()]
    assert len(lines) == len(errors)
    warnings = [r.getMessage() for r in lines if r.levelno == logging.WARNING]
    assert len(warnings) == 2  # one per class: KeyError, then TypeError
    assert "KeyError" in warnings[0] and "TypeError" in warnings[1]
    assert not any(r.exc_info for r in caplog.records)  # no traceback flood


def test_a_loop_that_returns_while_running_is_restarted_too() -> None:
    class Returns(_Flaky):
        def _loop(self) -> None:
            self.attempts.append(time.monotonic())

    worker = Returns([])
    worker.start()
    try:
        _wait(lambda: len(worker.attempts) >= 3)
    finally:
        worker.stop()
    assert worker.health.restarts >= 2
    assert worker.health.last_error == "other"


def test_a_wait_between_attempts_that_raises_does_not_end_the_thread() -> None:
    class BadPause(_Flaky):
        def _pause(self, seconds: float) -> None:
            raise KeyError("run_id")

    worker = BadPause([ValueError("x"), ValueError("y")])
    worker.start()
    try:
        _wait(lambda: len(worker.attempts) == 3)
        assert worker.running
    finally:
        worker.stop()


# --- the eviction tracker against hostile replies ----------------------------------------


def _tracker_handler(info: bytes) -> Callable[[list[bytes]], bytes | None]:
    """An empty Redis for the tracker; PING answers as on a subscribed connection."""
    rest = basic_handler(info)

    def handle(args: list[bytes]) -> bytes | None:
        if args[0].upper() == b"PING":
            return array([bulk("pong"), bulk("")])
        return rest(args)

    return handle


def _without_run_id() -> bytes:
    sections = {k: list(v) for k, v in BASIC_INFO.items()}
    sections["Server"] = [line for line in sections["Server"] if not line.startswith("run_id")]
    return info_reply(sections)


@pytest.fixture
def fake() -> Iterator[FakeRedis]:
    with FakeRedis(_tracker_handler(_without_run_id())) as server:
        yield server


@pytest.mark.parametrize(
    "reply",
    [_without_run_id(), integer(1), array([bulk("not"), bulk("info")])],
    ids=["no-run-id", "integer", "array"],
)
def test_the_eviction_tracker_survives_an_info_without_run_id_or_not_text_and_says_so(
    fake: FakeRedis, slo: SLO, reply: bytes
) -> None:
    """It used to die for good: cache_evictions_total vanished and nothing said so."""
    fake.handler = _tracker_handler(reply)
    tracker = EvictionTracker(fake.url, slo, instance="t", collect_timeout=0.2)
    registry = CollectorRegistry()
    registry.register(tracker)
    registry.register(WorkerHealth([tracker]))
    tracker.start()
    try:
        _wait(lambda: tracker.health.restarts >= 3)
        for _ in range(5):  # scrapes while it fails: each asks for a reconcile
            generate_latest(registry)
        _wait(lambda: tracker.health.restarts >= 5)
        failing = _health(registry, COLLECTOR_EVICTIONS)
        assert tracker.running
        # the server comes to its senses: the same thread subscribes and is up again
        fake.handler = _tracker_handler(info_reply())
        assert tracker.wait_until_subscribed(40)
        _wait(lambda: tracker.reconcile() is not None)
        healthy = _health(registry, COLLECTOR_EVICTIONS)
        text = generate_latest(registry).decode()
    finally:
        tracker.stop()
    assert failing["up"] == 0.0
    assert failing["error=parse"] == 1.0
    assert failing["restarts"] >= 5
    assert healthy["up"] == 1.0 and healthy["error="] == 0.0
    assert 'cache_evictions_total{layer="redis",reason="maxmemory",type="unattributed"}' in text


def test_the_sampler_survives_a_keyspace_it_cannot_read_and_recovers(
    fake: FakeRedis, slo: SLO
) -> None:
    fake.handler = basic_handler(array([bulk("not"), bulk("info")]))  # INFO keyspace: no text
    sampler = KeyspaceSampler(fake.url, slo, instance="t", interval=0.05, pause=0)
    registry = CollectorRegistry()
    registry.register(sampler)
    registry.register(WorkerHealth([sampler]))
    sampler.start()
    try:
        _wait(lambda: sampler.health.restarts >= 2)
        failing = _health(registry, COLLECTOR_KEYSPACE_SAMPLER)
        fake.handler = basic_handler(info_reply())  # an empty keyspace: cycles succeed
        assert sampler.wait_for_cycle(40)
        _wait(lambda: sampler.health.last_error is None)
        healthy = _health(registry, COLLECTOR_KEYSPACE_SAMPLER)
    finally:
        sampler.stop()
    assert failing["up"] == 0.0 and failing["error=parse"] == 1.0
    assert healthy["up"] == 1.0 and healthy["restarts"] >= 2


def test_worker_health_serves_both_workers_in_one_registry_and_passes_promtool(
    fake: FakeRedis, slo: SLO
) -> None:
    fake.handler = _tracker_handler(info_reply())
    sampler = KeyspaceSampler(fake.url, slo, instance="t", interval=60)
    tracker = EvictionTracker(fake.url, slo, instance="t", collect_timeout=0.5)
    registry = CollectorRegistry()
    for collector in (sampler, tracker, WorkerHealth([sampler, tracker])):
        registry.register(collector)
    before = _health(registry, COLLECTOR_EVICTIONS)  # not started: not up
    sampler.start()
    tracker.start()
    try:
        assert tracker.wait_until_subscribed(20)
        assert sampler.wait_for_cycle(20)
        text = generate_latest(registry).decode()
    finally:
        sampler.stop()
        tracker.stop()
    after_stop = _health(registry, COLLECTOR_KEYSPACE_SAMPLER)
    assert before["up"] == 0.0
    for collector in (COLLECTOR_EVICTIONS, COLLECTOR_KEYSPACE_SAMPLER):
        labels = f'collector="{collector}",instance="t"'
        assert f"cache_exporter_collector_up{{{labels}}} 1.0" in text
        assert f"cache_exporter_collector_restarts_total{{{labels}}} 0.0" in text
    assert after_stop["up"] == 0.0
    result = promtool_check(text)
    assert result.returncode == 0, result.stdout + result.stderr


# --- the sampler under a keyspace naming 100 k databases ----------------------------------


def test_largest_dbs_keeps_the_databases_with_most_keys() -> None:
    populated = {db: db % 7 + 1 for db in range(1000)}
    kept = largest_dbs(populated, limit=10)
    assert len(kept) == 10
    assert set(kept.values()) == {7}
    assert list(kept) == sorted(kept)
    assert largest_dbs({0: 1, 3: 2}) == {0: 1, 3: 2}


def test_the_sampler_samples_at_most_max_databases_and_keeps_no_pool_per_database(
    fake: FakeRedis, slo: SLO
) -> None:
    """100 k keyspace databases once meant 100 k connection pools (and connections)."""
    sections = {k: list(v) for k, v in BASIC_INFO.items()}
    sections["Keyspace"] = [f"db{i}:keys={1 + i % 3},expires=0" for i in range(2000)]
    fake.handler = basic_handler(info_reply(sections))
    sampler = KeyspaceSampler(fake.url, slo, instance="t", interval=60, pause=0)
    try:
        estimate = sampler.run_cycle()
        selected = {args[1] for args in fake.commands if args[0].upper() == b"SELECT"}
        pools = len(sampler._clients)
    finally:
        sampler.stop()
    assert estimate is not None
    assert len(estimate.dbs) == MAX_DATABASES
    assert len(selected) <= MAX_DATABASES
    assert pools <= MAX_DATABASES + 1  # the URL's own database, plus the sampled ones


def test_a_servers_error_text_reaches_the_log_escaped_on_one_line() -> None:
    """Redis' own error words are logged (``NOPERM ...``), and a /scrape target may be
    any allowed host: its escape sequences and bidi controls reached the terminal."""
    import redis

    from exporter.collectors.health import failure_reason

    hostile = redis.ResponseError("ERR \x1b[2J\x1b[31mcleared\u202e\nsecond line\x00")
    reason = failure_reason(hostile)
    assert reason.isascii() and reason.isprintable(), repr(reason)
    assert reason.startswith("ResponseError: ERR ")
    assert failure_reason(redis.ResponseError("NOPERM this user has no permissions")) == (
        "ResponseError: NOPERM this user has no permissions"
    )
