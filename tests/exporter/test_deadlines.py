"""A scrape never outlives its deadline, whatever the far end does.

The far ends here are real loopback sockets that misbehave the way a broken
network or a wedged server does: one accepts and never answers, one answers a
byte at a time forever (each byte arrives well inside any per-call socket
timeout, so only a wall-clock deadline ends the wait).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from exporter.collectors._deadline import Deadline, DeadlineExceeded
from exporter.config import Settings
from exporter.server import create_app
from tests.exporter.conftest import sample

#: generous bound for "the helper thread of a timed-out call has ended"
THREADS_SETTLE = 10.0


class Listener:
    """A loopback TCP server that accepts connections and answers badly (or never)."""

    def __init__(self, trickle: bytes | None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.port = int(self.sock.getsockname()[1])
        self._trickle = trickle
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self._accept = threading.Thread(target=self._serve, daemon=True)
        self._accept.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._conns.append(conn)
            if self._trickle is not None:
                t = threading.Thread(target=self._drip, args=(conn,), daemon=True)
                self._threads.append(t)
                t.start()

    def _drip(self, conn: socket.socket) -> None:
        """Send the reply prefix, then one byte every 50 ms, never ending the reply."""
        assert self._trickle is not None
        try:
            conn.sendall(self._trickle)
            while not self._stop.wait(0.05):
                conn.sendall(b"x")
        except OSError:
            return

    def close(self) -> None:
        self._stop.set()
        self._accept.join(5)
        for t in self._threads:
            t.join(5)
        for conn in self._conns:
            conn.close()
        self.sock.close()


@pytest.fixture
def silent() -> Iterator[Listener]:
    """Accepts (the kernel completes the handshake) and never sends a byte."""
    listener = Listener(trickle=None)
    yield listener
    listener.close()


@pytest.fixture
def trickling() -> Iterator[Listener]:
    """Answers every connection with the start of a huge bulk reply, one byte at a time."""
    listener = Listener(trickle=b"$1000000\r\n")
    yield listener
    listener.close()


def _timed(client: TestClient, path: str, **params: str) -> tuple[str, float]:
    started = time.monotonic()
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.text, time.monotonic() - started


def _helpers() -> list[str]:
    """Names of the exporter's deadline helper threads still alive."""
    return [t.name for t in threading.enumerate() if t.name.startswith("deadline[")]


def _settled() -> bool:
    end = time.monotonic() + THREADS_SETTLE
    while _helpers() and time.monotonic() < end:
        time.sleep(0.05)
    return not _helpers()


def test_a_redis_that_trickles_its_reply_cannot_stretch_a_scrape(
    redis_url: str, trickling: Listener
) -> None:
    target = f"redis://127.0.0.1:{trickling.port}/0"
    settings = Settings(redis_url=redis_url, scrape_timeout=2.0, scrape_allow=("127.0.0.1",))
    with TestClient(create_app(settings, background=False)) as client:
        text, elapsed = _timed(client, "/scrape", target=target)
        inst = f"127.0.0.1:{trickling.port}"
        assert sample(text, "redis_up", instance=inst) == 0.0
        assert sample(text, "cache_exporter_last_scrape_error", error="timeout", instance=inst)
        assert elapsed < 2.0  # the configured scrape deadline
        # the helper that waited on the trickle does not outlive the request for long
        assert _settled(), _helpers()


def test_the_exporters_own_redis_trickling_gives_up_0_within_the_deadline(
    trickling: Listener,
) -> None:
    url = f"redis://127.0.0.1:{trickling.port}/0"
    with TestClient(create_app(Settings(redis_url=url, scrape_timeout=2.0), background=False)) as c:
        for _ in range(3):  # later scrapes are not stuck behind the first one
            text, elapsed = _timed(c, "/metrics")
            assert sample(text, "redis_up", instance=f"127.0.0.1:{trickling.port}") == 0.0
            assert elapsed < 2.0
        started = time.monotonic()
        assert c.get("/readyz").status_code == 503
        assert time.monotonic() - started < 2.0
    assert _settled(), _helpers()


def test_a_postgres_that_never_answers_keeps_the_scrape_within_its_deadline(
    redis_url: str, silent: Listener
) -> None:
    dsn = f"host=127.0.0.1 port={silent.port} user=app password=pw dbname=app"
    settings = Settings(redis_url=redis_url, scrape_timeout=1.5, postgres_dsn=dsn)
    with TestClient(create_app(settings, background=False)) as client:
        text, elapsed = _timed(client, "/metrics")
    assert sample(text, "cache_exporter_postgres_up") == 0.0
    assert sample(text, "redis_up", instance=redis_url.split("//")[1].split("/")[0]) == 1.0
    assert elapsed < 1.5  # the configured scrape deadline


def test_a_silent_scrape_target_gives_up_0_with_timeout_within_the_deadline(
    redis_url: str, silent: Listener
) -> None:
    settings = Settings(redis_url=redis_url, scrape_timeout=2.0, scrape_allow=("127.0.0.1",))
    with TestClient(create_app(settings, background=False)) as client:
        text, elapsed = _timed(client, "/scrape", target=f"redis://u:pw@127.0.0.1:{silent.port}/0")
    inst = f"127.0.0.1:{silent.port}"
    assert sample(text, "cache_exporter_last_scrape_error", error="timeout", instance=inst) == 1
    assert elapsed < 2.0


def test_shutdown_stops_the_background_threads_even_when_redis_trickles(
    trickling: Listener,
) -> None:
    url = f"redis://127.0.0.1:{trickling.port}/0"
    settings = Settings(redis_url=url, scrape_timeout=2.0, sampler={"interval": 0.1})
    done = threading.Event()

    def serve_and_shut_down() -> None:
        with TestClient(create_app(settings, background=True)) as client:
            client.get("/metrics")
            time.sleep(0.5)  # the sampler and the tracker are now reading the trickle
        done.set()

    runner = threading.Thread(target=serve_and_shut_down, daemon=True)
    runner.start()
    runner.join(30)  # "never hangs": far beyond any timeout the exporter sets
    assert done.is_set(), "the app's shutdown hung on its background threads"
    names = ("keyspace-sampler[", "eviction-tracker[")
    alive = [t.name for t in threading.enumerate() if t.name.startswith(names)]
    assert not alive


def test_deadline_helpers_are_reused_and_a_stuck_one_is_not_waited_for() -> None:
    deadline = Deadline("reuse")
    first = deadline.run(threading.get_ident, 1.0)
    assert deadline.run(threading.get_ident, 1.0) == first  # the parked helper, no new thread
    release = threading.Event()
    with pytest.raises(DeadlineExceeded):
        deadline.run(lambda: release.wait(5), 0.1)  # abandoned: its helper stays busy
    assert "deadline[reuse]" in _helpers()
    assert deadline.run(lambda: 7, 1.0) == 7  # served by another helper meanwhile
    release.set()
    assert _settled(), _helpers()  # back to idle: no longer named after a Deadline
