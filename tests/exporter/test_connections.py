"""Idle, slow and flooding clients cannot starve ``/metrics`` (a real ``serve`` process).

uvicorn alone kept a connection that never sent a request for ever, and past the
file-descriptor limit every accept failed and logged: 1,100 idle sockets under a
1,024 limit made /metrics time out and wrote 738 k log lines in 25 s.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest

from tests.exporter.conftest import Exporter
from tests.support.processes import RedisServer

StartExporter = Callable[..., Exporter]


@contextmanager
def idle_sockets(port: int, count: int) -> Iterator[list[socket.socket]]:
    socks = []
    try:
        for _ in range(count):
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        yield socks
    finally:
        for s in socks:
            s.close()


def closed_by_server(sock: socket.socket) -> bool:
    """The server ended the connection (EOF or reset) without answering."""
    sock.settimeout(0.5)
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def timed_metrics(exporter: Exporter) -> float:
    started = time.monotonic()
    assert httpx.get(exporter.base + "/metrics", timeout=3).status_code == 200
    return time.monotonic() - started


def test_idle_and_slow_connections_are_closed_after_the_header_deadline(
    redis_factory: Callable[..., RedisServer], exporter_factory: StartExporter
) -> None:
    exporter = exporter_factory(
        "--redis-url", redis_factory().url, "--request-header-timeout", "1"
    )
    with idle_sockets(exporter.port, 30) as idle, idle_sockets(exporter.port, 10) as slow:
        for s in slow:
            s.sendall(b"GET /metrics HTTP/1.1\r\nX-Slow: ")
        cut_off = set()
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:  # a byte every 0.2 s never completes a head
            for s in slow:
                try:
                    s.sendall(b"a")
                except OSError:
                    cut_off.add(s)
            time.sleep(0.2)
        assert len(cut_off) == len(slow)
        assert all(closed_by_server(s) for s in idle)
    assert timed_metrics(exporter) < 2.0


@pytest.mark.slow
def test_a_connection_flood_under_a_low_file_limit_keeps_metrics_answering(
    redis_factory: Callable[..., RedisServer], exporter_factory: StartExporter
) -> None:
    """600 idle sockets against a 256-descriptor process: /metrics still answers
    promptly while they are held, and the log stays short."""
    exporter = exporter_factory(
        "--redis-url", redis_factory().url, "--request-header-timeout", "30", nofile=256
    )
    with idle_sockets(exporter.port, 600):
        time.sleep(0.5)
        assert max(timed_metrics(exporter) for _ in range(5)) < 2.0
    assert len(exporter.log.splitlines()) < 60, exporter.log[-3000:]


def test_a_flood_of_slow_scrapes_does_not_starve_metrics(
    redis_factory: Callable[..., RedisServer], exporter_factory: StartExporter
) -> None:
    """/scrape requests to a frozen target each hold a thread for their deadline; they
    share the pool with /metrics, so at most a few run at once and the rest get 503."""
    frozen = socket.socket()
    frozen.bind(("127.0.0.1", 0))
    frozen.listen(512)  # the kernel completes every handshake; nobody ever answers
    port = frozen.getsockname()[1]
    exporter = exporter_factory("--redis-url", redis_factory().url, "--scrape-allow", "127.0.0.1")
    target = {"target": f"redis://127.0.0.1:{port}/0"}
    codes: list[int] = []

    def scrape() -> None:
        with contextlib.suppress(httpx.HTTPError):
            answer = httpx.get(exporter.base + "/scrape", params=target, timeout=15)
            codes.append(answer.status_code)

    try:
        flood = [threading.Thread(target=scrape) for _ in range(120)]
        for thread in flood:
            thread.start()
        time.sleep(0.3)
        slowest = max(timed_metrics(exporter) for _ in range(3))
        for thread in flood:
            thread.join(30)
    finally:
        frozen.close()
    assert slowest < 2.0
    assert codes.count(503) > 0 and codes.count(200) > 0, sorted(set(codes))
