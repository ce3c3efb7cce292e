"""One scrape of a hostile Redis: time, series served and the process' peak RSS.

A fake RESP server (``tests/support/resp.py``) answers ``INFO`` with a plain
server plus ``--commands`` made-up ``cmdstat_`` lines (each with a latencystats
line when ``--latency``) or ``--databases`` keyspace lines.  Each case runs in a
fresh process so the RSS figure is that scrape's alone::

    .venv/bin/python benchmarks/hostile_info.py --commands 126000
    .venv/bin/python benchmarks/hostile_info.py --databases 100000

The INFO collector gets the deadline ``serve`` gives it for the default 5 s
scrape timeout; the scrape is rendered with prometheus-client's text encoder,
as ``/metrics`` does.  With ``--serve`` the whole exporter runs instead (``serve``
as a subprocess, its background collectors reading the same fake server, which
then answers ``INFO <section>`` with that section alone, as Redis does) and
``GET /metrics`` is timed; RSS is then the exporter process' (VmHWM).
``--root DIR`` runs the exporter from another checkout (the code before a change)::

    .venv/bin/python benchmarks/hostile_info.py --serve --databases 100000
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prometheus_client import CollectorRegistry, generate_latest

from exporter.collectors.redis_info import RedisInfoCollector
from tests.support.resp import (
    BASIC_INFO,
    FakeRedis,
    basic_handler,
    info_reply,
    sectioned_handler,
)


def hostile_sections(commands: int, databases: int, latency: bool) -> dict[str, list[str]]:
    sections = {k: list(v) for k, v in BASIC_INFO.items()}
    cmd = "calls=1,usec=1,usec_per_call=1.00,rejected_calls=0,failed_calls=0"
    sections["Commandstats"] += [f"cmdstat_cmd{i}:{cmd}" for i in range(commands)]
    if latency:
        sections["Latencystats"] = [
            f"latency_percentiles_usec_cmd{i}:p50=1.003,p99=2.007,p99.9=3.001"
            for i in range(commands)
        ]
    sections["Keyspace"] += [f"db{i}:keys=1,expires=0,avg_ttl=0" for i in range(databases)]
    return sections


def hostile_info(commands: int, databases: int, latency: bool) -> bytes:
    return info_reply(hostile_sections(commands, databases, latency))


def _vm(pid: int, field: str) -> float:
    """A /proc/<pid>/status figure in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def serve(sections: dict[str, list[str]], root: Path, scrapes: int) -> None:
    """Time ``GET /metrics`` of a real ``serve`` process in front of the fake server."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with FakeRedis(sectioned_handler(sections)) as fake:
        proc = subprocess.Popen(
            [sys.executable, "-m", "exporter.cli", "serve", "--redis-url", fake.url,
             "--listen", f"127.0.0.1:{port}", "--scrape-timeout", "5"],
            cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            for _ in range(300):
                try:
                    socket.create_connection(("127.0.0.1", port), 0.2).close()
                    break
                except OSError:
                    time.sleep(0.1)
            for i in range(scrapes):
                started = time.perf_counter()
                try:
                    with urllib.request.urlopen(
                        f"http://127.0.0.1:{port}/metrics", timeout=60
                    ) as r:
                        status, text = r.status, r.read().decode()
                except urllib.error.HTTPError as exc:
                    status, text = exc.code, ""
                elapsed = time.perf_counter() - started
                series = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
                up = [line for line in text.splitlines() if line.startswith("redis_up")]
                print(
                    f"scrape {i + 1}: HTTP {status}  {elapsed:.2f} s  series {series}  "
                    f"page {len(text) / 1e6:.1f} MB  {up[0] if up else 'no redis_up'}"
                )
            rss, peak = _vm(proc.pid, "VmRSS"), _vm(proc.pid, "VmHWM")
            print(f"exporter RSS {rss:.0f} MB, peak {peak:.0f} MB")
        finally:
            proc.terminate()
            proc.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=0)
    parser.add_argument("--databases", type=int, default=0)
    parser.add_argument("--latency", action="store_true")
    parser.add_argument("--timeout", type=float, default=5.0 * 0.25, help="the INFO deadline")
    parser.add_argument("--serve", action="store_true", help="time a real serve process")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--scrapes", type=int, default=3)
    args = parser.parse_args()
    reply = hostile_info(args.commands, args.databases, args.latency)
    if args.serve:
        serve(
            hostile_sections(args.commands, args.databases, args.latency), args.root, args.scrapes
        )
        return 0
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with FakeRedis(basic_handler(reply)) as fake:
        collector = RedisInfoCollector(fake.url, instance=fake.address, timeout=args.timeout)
        registry = CollectorRegistry()
        registry.register(collector)
        started = time.perf_counter()
        text = generate_latest(registry).decode()
        elapsed = time.perf_counter() - started
        collector.close()
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    series = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
    up = [line for line in text.splitlines() if line.startswith("redis_up")]
    print(
        f"reply {len(reply) / 1e6:.1f} MB  scrape {elapsed:.2f} s  series {series}  "
        f"peak RSS {rss_after / 1024:.0f} MB (+{(rss_after - rss_before) / 1024:.0f} MB)  "
        f"page {len(text) / 1e6:.1f} MB  {up[0] if up else 'no redis_up'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
