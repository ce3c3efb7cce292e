"""Exposition: ASGI and WSGI /metrics, summing worker processes in multiprocess mode."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from exporter.client import CacheService
from exporter.client.exposition import MULTIPROC_ENV, make_asgi_app, make_wsgi_app
from tests.support.processes import cleanup_env

# one side: exposition and multiprocess mode, fed by worker processes running sync services
WORKER = """
import sys
from exporter.client import CacheService
cache = CacheService.from_url(sys.argv[1])  # default registry: multiprocess values
key = cache.key("user", sys.argv[2])
cache.set(key, 1)
cache.get(key)
cache.get(cache.key("user", "missing"))
cache.mget([key, cache.key("user", "missing-too")])
print("done", flush=True)
sys.stdin.read()  # stay alive (as a server's worker does) until the test has scraped
"""


def samples(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def call_wsgi(app: Any) -> str:
    status: list[str] = []
    body = app(
        {"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics", "QUERY_STRING": "", "wsgi.input": None},
        lambda s, headers: status.append(s),
    )
    assert status[0].startswith("200")
    return b"".join(body).decode()


async def call_asgi(app: Any) -> str:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    return response.text


@pytest.fixture
def worker_metrics(
    tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """Two live worker processes in multiprocess mode, each did (get + mget) one hit
    and one miss of each; they wait until the test is over."""
    mp_dir = tmp_path / "prom"
    mp_dir.mkdir()
    env = cleanup_env()
    env[MULTIPROC_ENV] = str(mp_dir)
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, redis_url, str(n)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None
            assert worker.stdout.readline().strip() == "done"
        monkeypatch.setenv(MULTIPROC_ENV, str(mp_dir))
        yield mp_dir
    finally:
        for worker in workers:
            assert worker.stdin is not None and worker.stdout is not None
            worker.stdin.close()
            worker.wait(timeout=30)
            worker.stdout.close()


def test_wsgi_sums_worker_processes(worker_metrics: Path) -> None:
    text = call_wsgi(make_wsgi_app())
    # read while the workers live: every call is in their files at once, none queued
    assert samples(text, "cache_hits_total", layer="redis", type="user") == 4
    assert samples(text, "cache_misses_total", layer="redis", type="user") == 4
    assert samples(text, "cache_latency_seconds_count", operation="get") == 4
    assert samples(text, "cache_latency_seconds_count", operation="mget") == 2


async def test_asgi_sums_worker_processes(worker_metrics: Path) -> None:
    text = await call_asgi(make_asgi_app())
    assert samples(text, "cache_hits_total", layer="redis", type="user") == 4


# one side: it is about the exposition apps (the service only makes a sample)
async def test_single_process_serves_the_given_registry(
    sync_cache: CacheService, registry: CollectorRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    sync_cache.get(sync_cache.key("session", "1"))
    text = await call_asgi(make_asgi_app(registry))
    assert samples(text, "cache_misses_total", layer="redis", type="session") == 1
    assert samples(call_wsgi(make_wsgi_app(registry)), "cache_misses_total", type="session") == 1


def test_missing_multiproc_dir_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path / "nope"))
    with pytest.raises(ValueError, match=f"{MULTIPROC_ENV}: expected an existing directory"):
        make_wsgi_app()
