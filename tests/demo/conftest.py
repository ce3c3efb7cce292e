"""One live stack for the tests/demo package: the demo's own stack with fast rules.

Real programs throughout: redis-server, the app process under the synthetic
workload (its Redis traffic through the delaying proxy in the slow scenarios),
nginx with ``proxy_cache`` in front of the app with the demo's browsers sending
through it, the exporter (reading nginx's log, and the demo's own PostgreSQL, which the
app reads on a Redis miss, for the buffer-cache layer), Prometheus scraping both every
second with the generator's ``fast`` rules, and Alertmanager routing to a
webhook receiver that runs in this test process.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from exporter.demo.stack import Stack, StackOptions
from tests.support.processes import require_binary

T = TypeVar("T")


@pytest.fixture(scope="package")
def stack() -> Iterator[Stack]:
    for binary in ("redis-server", "prometheus", "prometheus-alertmanager"):
        require_binary(binary)
    live = Stack(
        StackOptions(
            profile="fast",
            scrape_interval="1s",
            group_wait="1s",
            rate=150,
            seed=7,
            with_prometheus=True,
            postgres=True,  # the demo's own: fails (never skips) without PostgreSQL
            edge=True,  # fails (never skips) without nginx
        )
    )
    try:
        live.start()
        yield live
    finally:
        live.stop()


def poll(check: Callable[[], T | None], timeout: float, what: str, every: float = 0.5) -> T:
    """Call ``check`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except OSError as exc:
            last = exc
        if last:
            return last  # type: ignore[no-any-return]
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")


def prometheus_query(stack: Stack, expr: str) -> list[dict[str, Any]]:
    url = f"{stack.urls['prometheus']}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    result = body["data"]["result"]
    assert isinstance(result, list)
    return result
