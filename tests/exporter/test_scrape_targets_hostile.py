"""``/scrape?target=`` against targets built to slip past ``--scrape-allow``: every
accepted target must connect exactly where it was judged to (the connection URL is
written back from the checked values and read again by redis-py), socket paths
cannot climb out of an allowed directory, IPv4 patterns match no names, and
link-local (metadata) addresses need a pattern that names them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from redis.connection import parse_url

from exporter.config import Settings
from exporter.scrape_targets import allowed, parse_target
from tests.exporter.conftest import sample
from tests.exporter.test_app import client_for
from tests.support.processes import RedisServer

HOSTILE = [
    "redis://evil.example%23.cache.internal",  # '#': the rest became the URL's fragment
    "redis://evil.example%3F.cache.internal:6379",  # '?': the rest became a query
    "redis://evil.example%2F.cache.internal",  # '/': the rest became the path
    "redis://x%40evil.example",  # '@': x became a user name
    "redis://evil.example%00.cache.internal",
    "redis://evil.example%0A.cache.internal",
    "redis://evil.example%20.cache.internal",
    "redis://[::1%5D:6379%23]:6379",
    "unix:///run/redis/../../tmp/evil.sock",
    "unix:///run/redis/./redis.sock",
    "unix:///run//redis/redis.sock",
    "unix://relative.sock",
    "unix:///run/redis/" + "x" * 200 + ".sock",
    "redis://0x7f000001:6379",  # the resolver reads these as 127.0.0.1
    "redis://2130706433",
    "redis://127.1",
    "redis://017.0.0.1",
    "redis://127.0.0.1/99999999999999999999",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_a_target_that_would_not_connect_where_it_was_judged_is_refused(text: str) -> None:
    with pytest.raises(ValueError) as refused:
        parse_target(text)
    assert "evil" not in str(refused.value)  # the error says what was expected, no echo


@pytest.mark.parametrize(
    "text",
    [
        "redis://127.0.0.1",
        "redis://cache-1.internal:6380/2",
        "rediss://Cache_1.Internal.:6380",
        "redis://[::1]:7000/0",
        "redis://[fe80::1%25eth0]:6379",
        "redis://u:p@h:6379/0?password=x",
        "redis://%31%32%37.0.0.1:6379",  # percent-encoded digits decode to the host
        "unix:///run/redis/redis.sock?db=3",
    ],
)
def test_every_accepted_target_reads_back_as_what_was_checked(text: str) -> None:
    target = parse_target(text)
    again = parse_url(target.url)  # what the /scrape collector connects with
    if target.path:
        assert again["path"] == target.path
    else:
        assert (again["host"], int(again.get("port", 6379))) == (target.host, target.port)
    assert int(again.get("db", 0)) == target.db


@pytest.mark.parametrize(
    ("text", "patterns", "expected"),
    [
        ("redis://10.0.0.1.attacker.example:6379", ("10.0.*",), False),
        ("redis://10.attacker.example", ("10.*",), False),
        ("redis://10.0.0.1:6379", ("10.0.*",), True),
        ("redis://169.254.169.254:80", ("*",), False),
        ("redis://169.254.169.254:80", ("169.254.*",), False),
        ("redis://169.254.169.254:80", ("169.254.169.254",), True),
        ("redis://[fe80::1]:6379", ("*",), False),
        ("redis://[fd00:ec2::254]", ("*",), False),
        ("redis://[::ffff:169.254.169.254]:6379", ("*",), False),  # IPv4-mapped
        ("redis://[64:ff9b::a9fe:a9fe]:6379", ("*",), False),  # NAT64 of 169.254.169.254
        ("redis://[::ffff:10.0.0.1]:6379", ("*",), True),
        ("redis://[fd00:ec2::254]", ("[fd00:ec2::254]",), True),
        ("redis://cache-1.internal", ("*",), True),
    ],
)
def test_ip_patterns_match_addresses_and_metadata_addresses_need_naming(
    text: str, patterns: tuple[str, ...], expected: bool
) -> None:
    assert allowed(parse_target(text), patterns) is expected


def test_a_fragment_hidden_in_the_host_is_refused_not_connected() -> None:
    """``*.cache.internal`` let ``evil.example%23.cache.internal`` through, and the
    collector connected to evil.example:6379."""
    settings = Settings(redis_url="redis://127.0.0.1:1", scrape_allow=("*.cache.internal",))
    with client_for(settings) as client:
        answer = client.get("/scrape", params={"target": "redis://evil.example%23.cache.internal"})
    assert answer.status_code == 400, answer.text
    assert "host name" in answer.json()["detail"]


def test_a_socket_path_cannot_climb_out_of_its_allowed_directory(
    redis_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    (tmp_path / "allowed").mkdir()
    outside = tmp_path / "outside.sock"
    redis_factory("--unixsocket", str(outside), "--unixsocketperm", "700")
    climbing = f"unix://{tmp_path}/allowed/../outside.sock"
    settings = Settings(redis_url="redis://127.0.0.1:1", scrape_allow=(f"{tmp_path}/allowed/*",))
    with client_for(settings) as client:
        answer = client.get("/scrape", params={"target": climbing})
    assert answer.status_code == 400, sample(answer.text, "redis_up")
