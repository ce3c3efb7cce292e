"""Collectors behind ``redis+sentinel://`` against a Sentinel that answers what no real
Sentinel would (a small fake: tests/support/resp.py): huge or deeply nested replies
are refused in bounded memory, bad addresses and a frozen Sentinel are a scrape's
``redis_up 0`` within its timeout, and no password reaches the output or the logs."""

from __future__ import annotations

import logging
import re
import time
import tracemalloc
from collections.abc import Iterator

import pytest
import redis
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest

from exporter.collectors._redis import MAX_INFO_BYTES, MAX_REPLY_ITEMS, connection_pool
from exporter.collectors.redis_info import CappedParser, RedisInfoCollector, ReplyTooLarge
from tests.support.resp import (
    FakeRedis,
    Handler,
    array,
    basic_handler,
    bulk,
    error,
    info_reply,
    integer,
    simple,
)

SECRET = "sentinel-secret-5521"


def masters(ip: str, port: str) -> bytes:
    fields = {"name": "svc", "ip": ip, "port": port, "flags": "master",
              "num-other-sentinels": "0", "quorum": "1"}  # fmt: skip
    return array([array([bulk(part) for pair in fields.items() for part in pair])])


def sentinel_answering(masters_reply: bytes | None) -> Handler:
    def handle(args: list[bytes]) -> bytes | None:
        if [a.upper() for a in args[:2]] == [b"SENTINEL", b"MASTERS"]:
            return masters_reply
        if args and args[0].upper() in (b"PING", b"CLIENT", b"HELLO", b"AUTH"):
            return simple("OK")
        return error("ERR unknown command")

    return handle


@pytest.fixture
def master() -> Iterator[FakeRedis]:
    with FakeRedis(basic_handler(info_reply())) as server:
        yield server


def scrape(sentinel: FakeRedis, timeout: float = 1.0) -> tuple[str, float]:
    url = f"redis+sentinel://:{SECRET}@{sentinel.address}/svc?sentinel_password={SECRET}"
    collector = RedisInfoCollector(url, instance="s", timeout=timeout)
    registry = CollectorRegistry()
    registry.register(collector)
    started = time.monotonic()
    try:
        text = generate_latest(registry).decode()
    finally:
        collector.close()
    return text, time.monotonic() - started


def test_a_huge_sentinel_answer_is_refused_in_bounded_memory() -> None:
    """160 MiB of SENTINEL MASTERS (nested: each array and string under its own cap)
    used to be read whole, taking more than its size in memory."""
    huge = array([array([bulk(b"x" * (1 << 20))] * 160)])
    with FakeRedis(sentinel_answering(huge)) as sentinel:
        tracemalloc.start()
        try:
            text, _ = scrape(sentinel, timeout=5.0)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert 'redis_up{instance="s"} 0.0' in text
    assert peak < 3 * MAX_INFO_BYTES, peak  # the budget, read and buffered: not all 96 MiB
    # the samplers' and trackers' pools ask the same Sentinels through the same parser
    with FakeRedis(sentinel_answering(huge)) as sentinel:
        pool = connection_pool(f"redis+sentinel://{sentinel.address}/svc", timeout=5.0)
        with pytest.raises(redis.ConnectionError, match=ReplyTooLarge.__name__):
            pool.get_connection()  # type: ignore[call-arg]  # MasterNotFoundError


def test_a_reply_of_many_small_arrays_is_refused_as_a_whole() -> None:
    """Every array under MAX_ARRAY_ITEMS, but the reply as a whole past MAX_REPLY_ITEMS:
    each array's own bound let 1024 arrays of 1024 through."""
    many = array([array([integer(1)] * 1000)] * (MAX_REPLY_ITEMS // 1000 + 1))
    with FakeRedis(lambda args: many) as server:
        pool = redis.ConnectionPool(port=server.port, socket_timeout=5, parser_class=CappedParser)
        client = redis.Redis(connection_pool=pool)
        try:
            with pytest.raises(ReplyTooLarge):
                client.execute_command("SENTINEL", "MASTERS")
        finally:
            client.close()


@pytest.mark.parametrize(
    ("ip", "port"),
    [
        ("127.0.0.1", "abc"),
        ("127.0.0.1", "99999"),
        ("a" * 300, "6379"),
        ("127.0.0.1\r\nINJECTED 1", "6379"),
        ("", ""),
    ],
)
def test_a_bad_master_address_is_a_failed_scrape_without_secrets(
    ip: str, port: str, caplog: pytest.LogCaptureFixture
) -> None:
    with FakeRedis(sentinel_answering(masters(ip, port))) as sentinel, caplog.at_level(
        logging.DEBUG
    ):
        text, seconds = scrape(sentinel)
    assert 'redis_up{instance="s"} 0.0' in text
    assert seconds < 3
    assert SECRET not in text
    assert not [r for r in caplog.records if SECRET in r.getMessage()]
    assert "INJECTED" not in text


def test_a_frozen_sentinel_fails_the_scrape_within_its_timeout() -> None:
    with FakeRedis(sentinel_answering(None)) as sentinel:
        text, seconds = scrape(sentinel, timeout=0.5)
    assert 'redis_up{instance="s"} 0.0' in text
    assert seconds < 1.5


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"redis+sentinel://h/svc?sentinel=u:{SECRET}@h2:26380", "without credentials"),
        ("redis+sentinel://h/svc?sentinel=h2/x", "a host[:port] alone"),
        ("redis+sentinel://h:0/svc", "a numeric port from 1 to 65535"),
        ("redis+sentinel://h/svc?sentinel=h2:0", "with a port from 1 to 65535"),
        ("redis+sentinel://h/svc/²", "a database number"),  # int() took "²" for 2... or raised
        ("redis+sentinel://h/sv%0Ac", "printable"),  # a newline in instance and log lines
        ("redis+sentinel://h/" + "s" * 300, "at most 256"),
    ],
)
def test_a_sentinel_url_that_would_lose_or_bend_a_value_is_refused(
    url: str, expected: str
) -> None:
    """Each used to be taken: credentials in sentinel= dropped unsaid, port 0 read as
    26379, a service name with a newline put in every log line and label."""
    from exporter.redis_urls import parse_sentinel_url

    with pytest.raises(ValueError, match=re.escape(expected)) as refused:
        parse_sentinel_url(url)
    assert SECRET not in str(refused.value)


def test_a_frozen_sentinel_costs_one_timeout_not_twenty() -> None:
    """Sentinel connections kept redis-py's default retries (3, with backoff): the
    samplers' and trackers' connect through a frozen Sentinel took 5 s at 0.25 s."""
    with FakeRedis(sentinel_answering(None)) as sentinel:
        pool = connection_pool(f"redis+sentinel://{sentinel.address}/svc", timeout=0.25)
        started = time.monotonic()
        with pytest.raises(redis.ConnectionError):  # MasterNotFoundError
            pool.get_connection()  # type: ignore[call-arg]
        assert time.monotonic() - started < 1.0


@pytest.mark.parametrize(
    "broken",
    [
        pytest.param(array([array([bulk("name"), bulk("svc")])]), id="fields-missing"),
        pytest.param(masters("127.0.0.1", "abc"), id="port-not-a-number"),
        pytest.param(array([array([bulk(b"x" * (1 << 20))] * 40)]), id="too-large"),
    ],
)
def test_one_broken_sentinel_does_not_hide_the_master_the_next_names(
    broken: bytes, master: FakeRedis
) -> None:
    """redis-py asked the next Sentinel only after a connection error or a timeout:
    any other failure of the first ended the search."""
    good = masters("127.0.0.1", str(master.port))
    with FakeRedis(sentinel_answering(broken)) as bad, FakeRedis(
        sentinel_answering(good)
    ) as fine:
        url = f"redis+sentinel://{bad.address}/svc?sentinel={fine.address}"
        collector = RedisInfoCollector(url, instance="s", timeout=2.0)
        registry = CollectorRegistry()
        registry.register(collector)
        try:
            text = generate_latest(registry).decode()
        finally:
            collector.close()
        assert 'redis_up{instance="s"} 1.0' in text
        pool = connection_pool(url, timeout=2.0)
        connection = pool.get_connection()  # type: ignore[call-arg]
        assert connection.port == master.port
        pool.disconnect()
