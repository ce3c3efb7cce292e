"""``cache-slo-exporter demo --duration N``: starts, serves every URL it prints, exits by
itself, and leaves no process and no temp dir behind."""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis

from tests.support.processes import cleanup_env, require_binary

DURATION = 15
UP_WITHIN_SECONDS = 30


def read_until(proc: subprocess.Popen[str], pattern: str, timeout: float) -> list[str]:
    """Lines of stdout up to and including the first matching ``pattern``."""
    assert proc.stdout is not None
    lines: list[str] = []
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not sel.select(timeout=0.5):
            continue
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if re.search(pattern, line):
            return lines
    raise AssertionError(f"no line matching {pattern!r} within {timeout}s:\n" + "\n".join(lines))


def listening(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "", parts.port or 80), timeout=0.5):
            return True
    except OSError:
        return False


def processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{entry.name}: {cmdline}")
    return found


def test_demo_serves_every_printed_url_then_exits_cleanly_by_itself() -> None:
    for binary in ("redis-server", "prometheus", "prometheus-alertmanager"):
        require_binary(binary)
    proc = subprocess.Popen(
        [sys.executable, "-m", "exporter.cli", "demo", f"--duration={DURATION}", "--rate=100"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=cleanup_env(),
    )
    try:
        lines = read_until(proc, r"^Ctrl-C stops everything", timeout=UP_WITHIN_SECONDS)
        tmp = re.search(r"starting the demo \(healthy\) in (\S+) \.\.\.", lines[0])
        assert tmp, lines
        tmp_dir = Path(tmp.group(1))
        assert tmp_dir.is_dir()
        urls = dict(
            m.groups() for line in lines if (m := re.match(r"^  (.+?)\s{2,}(\S+://\S+)$", line))
        )
        assert set(urls) == {
            "redis",
            "postgres",
            "app metrics",
            "edge (nginx)",
            "exporter metrics",
            "prometheus alerts",
            "prometheus graph",
            "alertmanager alerts",
            "SLO status page",
        }
        for name, url in urls.items():
            if url.startswith("redis://"):
                client = redis.Redis.from_url(url)
                assert client.ping()
                assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "allkeys-lru"
                client.close()
                continue
            if url.startswith("postgresql://"):  # its password is not printed: it listens
                assert urlsplit(url).password is None, "the demo printed a password"
                assert listening(url), url
                continue
            with urllib.request.urlopen(url, timeout=10) as response:
                assert response.status == 200, name
                body = response.read().decode()
            if name.endswith("metrics"):
                assert "cache_" in body or "redis_" in body, name
            if name == "edge (nginx)":  # the app's page, through nginx
                assert "<title>cache-slo demo</title>" in body, body[:200]
        status = read_until(proc, r"reads .* hit rate .* GET p99", timeout=15)
        assert status
        rest, _ = proc.communicate(timeout=DURATION + 30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, rest
    assert "stopped; nothing left running." in rest
    assert not tmp_dir.exists(), f"{tmp_dir} left behind"
    assert processes_mentioning(str(tmp_dir)) == []
    for name, url in urls.items():
        assert not listening(url), f"{name} still listening at {url}"


def test_sigterm_stops_everything_and_the_own_postgres_password_never_shows() -> None:
    require_binary("redis-server")
    proc = subprocess.Popen(
        [sys.executable, "-m", "exporter.cli", "demo", "--no-prometheus", "--rate=50"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=cleanup_env(),
    )
    try:
        lines = read_until(proc, r"^Ctrl-C stops everything", timeout=UP_WITHIN_SECONDS)
        tmp = re.search(r" in (\S+) \.\.\.", lines[0])
        assert tmp, lines
        urls = [m.group(1) for line in lines if (m := re.match(r"^  .+?\s{2,}(\S+://\S+)$", line))]
        # redis, postgres, app, edge (nginx), exporter
        assert len(urls) == 5 and all(listening(u) for u in urls), lines
        children = children_of(proc.pid)
        assert len(children) >= 5, children
        # the demo's own PostgreSQL password: in the app's and exporter's environments only
        passwords = {
            m.group(1)
            for pid in children
            if (m := re.search(rb"POSTGRES_DSN=postgresql://postgres:(\w+)@", environ(pid)))
        }
        assert len(passwords) == 1, passwords
        password = passwords.pop().decode()
        assert processes_mentioning(password) == []
        assert processes_mentioning("postgresql://") == []
        proc.terminate()
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, rest
    assert "stopped; nothing left running." in rest
    assert password not in "\n".join(lines) + rest
    assert not Path(tmp.group(1)).exists()
    assert processes_mentioning(tmp.group(1)) == []  # postgres' arguments name it too
    assert alive(children) == []
    assert not any(listening(u) for u in urls)


def environ(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return b""


def test_an_external_redis_password_never_shows_in_output_or_process_arguments(
    redis_factory: Any,
) -> None:
    secret = "demo-pw-5521"
    server = redis_factory("--requirepass", secret)
    url = f"redis://:{secret}@127.0.0.1:{server.port}/0"
    proc = subprocess.Popen(
        [sys.executable, "-m", "exporter.cli", "demo", "--no-prometheus", "--rate=50"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**cleanup_env(), "CACHE_SLO_DEMO_REDIS_URL": url},
    )
    try:
        lines = read_until(proc, r"reads .* hit rate .* GET p99", timeout=UP_WITHIN_SECONDS)
        assert processes_mentioning(secret) == []  # not in any command line
        client = redis.Redis.from_url(url)
        assert client.dbsize() > 0  # the workload wrote through the proxy, authenticated
        client.close()
        proc.terminate()
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, rest
    assert secret not in "\n".join(lines) + rest


def start_demo() -> subprocess.Popen[str]:
    require_binary("redis-server")
    return subprocess.Popen(
        [sys.executable, "-m", "exporter.cli", "demo", "--no-prometheus", "--rate=50"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=cleanup_env(),
    )


def assert_all_gone(proc: subprocess.Popen[str], tmp: str, children: list[int]) -> str:
    try:
        rest, _ = proc.communicate(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "stopped; nothing left running." in rest, rest
    assert not Path(tmp).exists(), rest
    assert processes_mentioning(tmp) == [], rest
    assert alive(children) == [], rest
    return rest


@pytest.mark.parametrize(
    ("signum", "phase"),
    [
        (signal.SIGHUP, r"^Ctrl-C stops everything"),  # the terminal window is closed
        (signal.SIGINT, r"^starting the demo"),  # Ctrl-C while it is still starting
    ],
    ids=["sighup-running", "sigint-starting"],
)
def test_a_signal_at_any_phase_leaves_nothing_behind(signum: int, phase: str) -> None:
    proc = start_demo()
    children: list[int] = []
    try:
        lines = read_until(proc, phase, timeout=UP_WITHIN_SECONDS)
        tmp = re.search(r" in (\S+) \.\.\.", lines[0])
        assert tmp, lines
        time.sleep(0.3)
        children = children_of(proc.pid)
        proc.send_signal(signum)
    finally:
        rest = assert_all_gone(proc, tmp.group(1) if tmp else "/nonexistent", children)
    assert proc.returncode == 0, rest


def test_a_crashed_child_stops_the_demo_and_everything_else() -> None:
    proc = start_demo()
    children: list[int] = []
    try:
        lines = read_until(proc, r"^Ctrl-C stops everything", timeout=UP_WITHIN_SECONDS)
        tmp = re.search(r" in (\S+) \.\.\.", lines[0])
        assert tmp, lines
        (redis_url,) = [u for line in lines if (u := line.split()[-1]).startswith("redis://")]
        children = children_of(proc.pid)
        with contextlib.suppress(redis.ConnectionError):
            redis.Redis.from_url(redis_url).shutdown(nosave=True)  # redis exits at once
    finally:
        rest = assert_all_gone(proc, tmp.group(1) if tmp else "/nonexistent", children)
    assert proc.returncode == 1, rest
    assert "redis stopped unexpectedly" in rest


def test_a_closed_stdout_stops_the_demo_and_leaves_nothing_behind() -> None:
    """``demo | head -3``, or a terminal gone: printing fails, the cleanup must not."""
    proc = start_demo()
    try:
        lines = read_until(proc, r"^Ctrl-C stops everything", timeout=UP_WITHIN_SECONDS)
        tmp = re.search(r" in (\S+) \.\.\.", lines[0])
        assert tmp, lines
        assert proc.stdout is not None
        children = children_of(proc.pid)
        proc.stdout.close()  # the next status line meets a broken pipe
        proc.wait(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not Path(tmp.group(1)).exists()
    assert processes_mentioning(tmp.group(1)) == []
    assert alive(children) == []


def test_demo_and_generate_name_the_rule_profile_alike() -> None:
    """``--profile`` in both; the demo's first name, ``--rules``, still works."""
    import argparse

    from exporter import generate
    from exporter.demo.command import configure_parser

    demo, gen = argparse.ArgumentParser(), argparse.ArgumentParser()
    configure_parser(demo)
    generate.configure_parser(gen)
    assert demo.parse_args(["--profile", "fast"]).profile == "fast"
    assert demo.parse_args(["--rules", "fast"]).profile == "fast"
    assert gen.parse_args(["--profile", "fast"]).profile == "fast"


def children_of(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def alive(pids: list[int]) -> list[int]:
    """The pids still running (a zombie has exited: it only waits to be reaped)."""
    running = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            running.append(pid)
    return running


def test_a_demo_killed_outright_takes_its_children_with_it() -> None:
    """SIGKILL (or the OOM killer) gives the demo no chance to stop its children:
    the kernel must (``PR_SET_PDEATHSIG``), or Redis, the app, nginx and the exporter
    run on."""
    proc = start_demo()
    tmp = None
    try:
        lines = read_until(proc, r"^Ctrl-C stops everything", timeout=UP_WITHIN_SECONDS)
        tmp = re.search(r" in (\S+) \.\.\.", lines[0])
        assert tmp, lines
        children = children_of(proc.pid)
        assert len(children) >= 4, children  # redis, the app, nginx, the exporter
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 20
        while alive(children) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert alive(children) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        if tmp:  # the demo could not remove its directory; the test does
            shutil.rmtree(tmp.group(1), ignore_errors=True)
