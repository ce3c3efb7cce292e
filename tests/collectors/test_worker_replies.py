"""The background workers (keyspace sampler, eviction tracker) read every reply in
bounded memory: they run against /scrape targets, which are any host the operator
allowed, so a reply is outside data (a small fake server: tests/support/resp.py)."""

from __future__ import annotations

import time
import tracemalloc

import pytest

from exporter.collectors._redis import (
    MAX_WORKER_REPLY_BYTES,
    ReplyTooLarge,
    client,
    connection_pool,
)
from exporter.collectors.keyspace_sampler import KeyspaceSampler
from exporter.slo import SLO
from tests.support.resp import BASIC_INFO, FakeRedis, array, basic_handler, bulk, info_reply

#: a SCAN answer of 100 MiB (each key 1 MiB: every array and string is small enough)
HUGE_SCAN = array([bulk("0"), array([bulk(b"k" * (1 << 20))] * 100)])


def test_a_huge_reply_to_a_worker_is_refused_in_bounded_memory() -> None:
    with FakeRedis(lambda args: HUGE_SCAN) as server:
        pool = connection_pool(server.url)
        tracemalloc.start()
        try:
            with pytest.raises(ReplyTooLarge):
                client(pool).scan(0, count=100)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            pool.disconnect()
    assert peak < 4 * MAX_WORKER_REPLY_BYTES, peak


def test_the_sampler_against_a_hostile_target_fails_its_cycle_not_the_process(
    slo: SLO,
) -> None:
    """A 300 MiB SCAN answer took the sampler to 900 MiB; now the cycle fails as a
    parse error (restarted, counted) and memory stays near the bound."""
    base = basic_handler(info_reply({**BASIC_INFO, "Keyspace": ["db0:keys=100,expires=0"]}))

    def handle(args: list[bytes]) -> bytes | None:
        return HUGE_SCAN if args and args[0].upper() == b"SCAN" else base(args)

    with FakeRedis(handle) as server:
        sampler = KeyspaceSampler(server.url, slo, instance="t", pause=0)
        tracemalloc.start()
        try:
            sampler.start()
            deadline = time.monotonic() + 20
            while sampler.health.restarts < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            sampler.stop()
            tracemalloc.stop()
    assert sampler.health.restarts >= 1
    assert sampler.health.last_error == "parse"
    assert peak < 8 * MAX_WORKER_REPLY_BYTES, peak
