"""Ports the demo announces are its own: two demos at once both work, a port taken
between choosing and binding moves the part to another port, and every printed URL or
command shows something with the Prometheus and Alertmanager installed here."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
import redis

from exporter.demo import stack as stack_module
from exporter.demo.database import TABLE
from exporter.demo.processes import bound_socket, listening_inodes
from exporter.demo.stack import Stack, StackOptions
from tests.demo.conftest import poll
from tests.demo.test_demo_command import read_until
from tests.support.processes import cleanup_env, require_binary

UP_WITHIN_SECONDS = 90  # two full stacks starting at once on a busy 2-core machine
BINARIES = ("redis-server", "prometheus", "prometheus-alertmanager")
LINE = re.compile(r"^  (.+?)\s{2,}(\S.*)$")


def holders(port: int) -> set[int]:
    """Pids of the processes holding a socket that listens on ``port``."""
    inodes = listening_inodes(port)
    assert inodes is not None, "/proc/net/tcp is unreadable"
    wanted = {f"socket:[{inode}]" for inode in inodes}
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) in wanted:
                    pids.add(int(entry.name))
                    break
            except OSError:
                continue
    return pids


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200, url
        return str(response.read().decode("utf-8", "replace"))


def start_demo(duration: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "exporter.cli", "demo", f"--duration={duration}", "--rate=50"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=cleanup_env(),
    )


def announced(lines: list[str]) -> tuple[str, str, dict[str, str]]:
    """(temp dir, run id, {name: URL or command}) from the demo's first lines."""
    tmp = re.search(r"starting the demo \(\w+\) in (\S+) \.\.\.", lines[0])
    run = re.search(r"^up in [\d.]+s \(run (\w+)\):", "\n".join(lines), re.MULTILINE)
    assert tmp and run, lines
    links = {m.group(1): m.group(2) for line in lines if (m := LINE.match(line))}
    return tmp.group(1), run.group(1), links


def port_of(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None, url
    return port


@pytest.fixture
def two_demos() -> Iterator[list[subprocess.Popen[str]]]:
    for binary in BINARIES:
        require_binary(binary)
    procs = [start_demo(20), start_demo(20)]
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.communicate(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_two_demos_started_at_once_both_come_up_on_their_own_ports(
    two_demos: list[subprocess.Popen[str]],
) -> None:
    seen: list[tuple[str, str, dict[str, str]]] = []
    for proc in two_demos:
        lines = read_until(proc, r"^Ctrl-C stops everything", timeout=UP_WITHIN_SECONDS)
        seen.append(announced(lines))
    (tmp_a, run_a, links_a), (tmp_b, run_b, links_b) = seen
    assert run_a != run_b
    urls_a = {n: u for n, u in links_a.items() if "://" in u.split()[0]}
    urls_b = {n: u for n, u in links_b.items() if "://" in u.split()[0]}
    assert set(urls_a) == set(urls_b) and "prometheus alerts" in urls_a, (links_a, links_b)
    ports_a = {port_of(u) for u in urls_a.values()}
    ports_b = {port_of(u) for u in urls_b.values()}
    assert not ports_a & ports_b, f"both demos announced {ports_a & ports_b}"

    for proc, tmp, run, urls in (
        (two_demos[0], tmp_a, run_a, urls_a),
        (two_demos[1], tmp_b, run_b, urls_b),
    ):
        for name, url in urls.items():
            # the process holding the announced port is one this demo started (nginx's
            # workers share their master's listening socket: their parent holds it too)
            pids = holders(port_of(url))
            assert pids and {parent_of(pid) for pid in pids} - pids == {proc.pid}, (name, pids)
        # and each program answers as this run's own
        assert get(urls["app metrics"].replace("/metrics", "/healthz")).strip() == f"ok {run}"
        prometheus = urls["prometheus alerts"].split("/", 3)[:3]
        flags = json.loads(get("/".join(prometheus) + "/api/v1/status/flags"))
        assert flags["data"]["storage.tsdb.path"].startswith(tmp + "/")
        client = redis.Redis.from_url(urls["redis"])
        try:
            assert client.config_get("dir")["dir"] == tmp
        finally:
            client.close()
        exporter_metrics = get(urls["exporter metrics"])
        assert f'redis_up{{instance="127.0.0.1:{port_of(urls["redis"])}"}} 1.0' in exporter_metrics
        assert "[healthy]" in read_until(proc, r"reads .* hit rate", timeout=30)[-1]


def test_a_port_taken_before_the_child_binds_it_is_never_announced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The race of issue 14: the port was free when chosen, another program bound it
    before the child did. The child exits ("address already in use") and is started
    again on another port; the taken port is never listed."""
    require_binary("redis-server")
    squatter = bound_socket()  # listens, never answers: a foreign program on the port
    taken = int(squatter.getsockname()[1])
    real_free_port = stack_module.free_port
    handed_out: list[int] = []

    def racy_free_port(preferred: int = 0) -> int:
        handed_out.append(taken if len(handed_out) < 2 else real_free_port(preferred))
        return handed_out[-1]

    monkeypatch.setattr(stack_module, "free_port", racy_free_port)
    live = Stack(StackOptions(rate=20, with_prometheus=False, postgres=False))
    try:
        live.start()
        assert handed_out[:2] == [taken, taken]  # redis got it first, then its retry did not
        ports = {port_of(url) for url in live.links.values()}
        assert taken not in ports, live.links
        client = redis.Redis.from_url(live.urls["redis"])
        try:
            assert client.config_get("dir")["dir"] == str(live.tmp)
        finally:
            client.close()
        assert f"ok {live.run_id}" in get(live.urls["app metrics"].replace("metrics", "healthz"))
    finally:
        live.stop()
        squatter.close()


def test_every_printed_url_and_command_shows_something(
    stack: Stack, stack_links: dict[str, str]
) -> None:
    """With the installed Prometheus (Debian's has only the classic pages) and Alertmanager
    (no web UI: the API and amtool), each line the demo prints leads somewhere useful."""
    expect: dict[str, Any] = {
        "app metrics": "cache_hits_total",
        "exporter metrics": "redis_up",
        "SLO status page": "<html",
        "prometheus alerts": "CacheHitRateBudgetBurn",
        "prometheus graph": "Prometheus",
        "edge (nginx)": "<title>cache-slo demo</title>",
    }
    for name, url in stack_links.items():
        if name == "redis":
            client = redis.Redis.from_url(url)
            try:
                assert client.ping()
            finally:
                client.close()
        elif name == "postgres":
            # printed without its password; the app's miss path reads the demo's table
            dsn = stack.postgres_dsn
            assert urlsplit(url).password is None and port_of(url) == port_of(dsn)
            poll(lambda: table_reads(stack.postgres_dsn) > 0, 20, "reads of demo_source")
        elif name == "alertmanager alerts":
            assert isinstance(json.loads(get(url)), list)
        elif name == "alertmanager CLI":
            done = subprocess.run(
                shlex.split(url), capture_output=True, text=True, timeout=30, check=False
            )
            assert done.returncode == 0, done.stderr
            assert done.stdout.split()[:1] == ["Alertname"], done.stdout
        else:
            assert expect[name] in get(url), name
    assert set(stack_links) >= {*expect, "redis", "postgres", "alertmanager alerts"}


@pytest.fixture
def stack_links(stack: Stack) -> dict[str, str]:
    return dict(stack.links)


def table_reads(dsn: str) -> int:
    """Index scans of the demo's table: the app's reads on a Redis miss."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT coalesce(idx_scan, 0) FROM pg_stat_user_tables WHERE relname = %s",
            (TABLE,),
        ).fetchone()
    return int(row[0]) if row else 0
