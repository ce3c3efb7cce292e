"""The exporter and Sentinel: ``--redis-url redis+sentinel://`` watches whichever node
is master and follows a forced failover; pointed at a Sentinel itself, it reports
Sentinel's view of its masters.  Real redis-server and redis-server --sentinel."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator

import pytest
from prometheus_client import CollectorRegistry

from exporter.collectors.redis_info import RedisInfoCollector
from exporter.config import ConfigError, configure_parser, instance_of, resolve
from exporter.redis_urls import parse_sentinel_url
from tests.exporter.conftest import Exporter, sample
from tests.support.topology import SentinelGroup, wait_until


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelGroup]:
    found = SentinelGroup(tmp_path_factory.mktemp("sentinel-exporter"))
    yield found
    found.stop()


def _value(collector: RedisInfoCollector, name: str, **labels: str) -> float | None:
    registry = CollectorRegistry()
    registry.register(collector)
    return registry.get_sample_value(name, {"instance": collector.instance, **labels})


def _master_info(collector: RedisInfoCollector, port: int) -> float | None:
    labels = {"role": "master", "tcp_port": str(port), "redis_mode": "standalone"}
    registry = CollectorRegistry()
    registry.register(collector)
    for family in registry.collect():
        for s in family.samples:
            if s.name == "redis_instance_info" and labels.items() <= s.labels.items():
                return s.value
    return None


def test_the_info_collector_follows_a_forced_failover(group: SentinelGroup) -> None:
    old = group.master_port()
    watched = RedisInfoCollector(group.url, instance=instance_of(group.url))
    sentinel = RedisInfoCollector(group.sentinel.url, instance="sentinel")
    try:
        assert watched.instance == f"127.0.0.1:{group.sentinel.port}/mymaster"
        assert _master_info(watched, old) == 1.0
        before = {"master_name": "mymaster", "master_address": f"127.0.0.1:{old}"}
        epoch = _value(sentinel, "redis_sentinel_master_config_epoch", **before)
        assert epoch is not None

        new = group.failover()  # the old master is still up, and still says "master"

        # the very next scrape asks Sentinel and reads INFO from the new master,
        # under the same instance
        assert _master_info(watched, new) == 1.0
        assert _value(watched, "redis_up") == 1.0
        after = {"master_name": "mymaster", "master_address": f"127.0.0.1:{new}"}
        assert _value(sentinel, "redis_sentinel_master_status", **after, master_status="ok") == 1
        assert (_value(sentinel, "redis_sentinel_master_config_epoch", **after) or 0) > epoch
    finally:
        watched.close()
        sentinel.close()


def test_serve_watches_the_master_a_sentinel_names(
    group: SentinelGroup, exporter_factory: Callable[..., Exporter]
) -> None:
    port = group.master_port()
    exporter = exporter_factory("--redis-url", group.url)
    instance = f"127.0.0.1:{group.sentinel.port}/mymaster"
    text = exporter.metrics()
    assert sample(text, "redis_up", instance=instance) == 1.0
    assert f'role="master",tcp_port="{port}"' in text
    for collector in ("keyspace_sampler", "evictions"):
        wait_until(
            lambda c=collector: (
                sample(  # type: ignore[misc]
                    exporter.metrics(),
                    "cache_exporter_collector_up",
                    instance=instance,
                    collector=c,
                )
                == 1.0
            ),
            what=f"{collector} up through Sentinel",
        )


def _resolve(*argv: str) -> object:
    parser = argparse.ArgumentParser()
    configure_parser(parser)
    return resolve(parser.parse_args(list(argv)), environ={})


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis+sentinel://:pw@h:26379/", "the master's service name"),
        ("redis+sentinel://:pw@h:26379/m/x", "a database number"),
        ("redis+sentinel://:pw@h:99999/m", "numeric port"),
        ("redis+sentinel://:pw@h/m?sentinel=h2:x", "sentinel=: a host[:port]"),
        ("redis+sentinel://:pw@h/m?socket_timeout=1", "only password, sentinel"),
    ],
)
def test_a_bad_sentinel_url_is_refused_naming_the_flag_without_its_password(
    url: str, expected: str
) -> None:
    with pytest.raises(ConfigError, match="--redis-url") as caught:
        _resolve("--redis-url", url)
    assert expected in str(caught.value)
    assert "pw" not in str(caught.value).replace("password", "")


def test_a_sentinel_url_names_every_sentinel_and_both_credentials() -> None:
    target = parse_sentinel_url(
        "rediss+sentinel://u:pw@s1/cache/3?sentinel=s2:26380&sentinel_password=sp"
    )
    assert target.sentinels == (("s1", 26379), ("s2", 26380))
    assert (target.service, target.db, target.ssl) == ("cache", 3, True)
    assert target.master_kwargs() == {"db": 3, "username": "u", "password": "pw", "ssl": True}
    assert target.sentinel_kwargs() == {"password": "sp"}
    assert "pw" not in repr(target) and "sp" not in repr(target)
