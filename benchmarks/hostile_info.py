"""One scrape of a hostile Redis: time, series served and the process' peak RSS.

A fake RESP server (``tests/support/resp.py``) answers ``INFO`` with a plain
server plus ``--commands`` made-up ``cmdstat_`` lines (each with a latencystats
line when ``--latency``) or ``--databases`` keyspace lines.  Each case runs in a
fresh process so the RSS figure is that scrape's alone::

    .venv/bin/python benchmarks/hostile_info.py --commands 126000
    .venv/bin/python benchmarks/hostile_info.py --databases 100000

The INFO collector gets the deadline ``serve`` gives it for the default 5 s
scrape timeout; the scrape is rendered with prometheus-client's text encoder,
as ``/metrics`` does.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prometheus_client import CollectorRegistry, generate_latest

from exporter.collectors.redis_info import RedisInfoCollector
from tests.support.resp import BASIC_INFO, FakeRedis, basic_handler, info_reply


def hostile_info(commands: int, databases: int, latency: bool) -> bytes:
    sections = {k: list(v) for k, v in BASIC_INFO.items()}
    cmd = "calls=1,usec=1,usec_per_call=1.00,rejected_calls=0,failed_calls=0"
    sections["Commandstats"] += [f"cmdstat_cmd{i}:{cmd}" for i in range(commands)]
    if latency:
        sections["Latencystats"] = [
            f"latency_percentiles_usec_cmd{i}:p50=1.003,p99=2.007,p99.9=3.001"
            for i in range(commands)
        ]
    sections["Keyspace"] += [f"db{i}:keys=1,expires=0,avg_ttl=0" for i in range(databases)]
    return info_reply(sections)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=0)
    parser.add_argument("--databases", type=int, default=0)
    parser.add_argument("--latency", action="store_true")
    parser.add_argument("--timeout", type=float, default=5.0 * 0.25, help="the INFO deadline")
    args = parser.parse_args()
    reply = hostile_info(args.commands, args.databases, args.latency)
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
