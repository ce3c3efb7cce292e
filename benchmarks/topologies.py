"""Cluster scrape time per node count, and memory per idle ``/scrape`` target.

``cluster``: for each node count it starts a real Redis Cluster (``redis-server
--cluster-enabled yes`` x N on free loopback ports, ``redis-cli --cluster
create``; 3 nodes are 3 masters, more are half masters, half replicas), seeds
1000 keys, and times ``collect()`` of the cluster collector (discovery
excluded: it is periodic) against the INFO scrape of one standalone
redis-server in the same run: the baseline the ratio is printed against.
``--background`` adds the per-node eviction trackers' reconcile (a PING
barrier per node) and the samplers' families, as ``serve --cluster`` scrapes.

``targets``: the app in-process (``create_app`` with its background workers),
N standalone redis-servers scraped once each through ``/scrape?target=``
(which starts a keyspace sampler and an eviction tracker per target), then
left idle until every sampler finished a cycle; the process's RSS and thread
count before and after, per target.

    .venv/bin/python benchmarks/topologies.py cluster [--nodes 3,6,12,24] [--scrapes 30]
    .venv/bin/python benchmarks/topologies.py targets [--targets 10,40]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from exporter.collectors.cluster import ClusterCollector  # noqa: E402
from exporter.collectors.redis_info import RedisInfoCollector  # noqa: E402
from exporter.slo import load_slo  # noqa: E402
from tests.support.cluster import LocalCluster  # noqa: E402
from tests.support.processes import RedisServer  # noqa: E402


def timed(collect: Callable[[], Iterable[object]], scrapes: int) -> float:
    """Median seconds of ``list(collect())`` over ``scrapes`` runs (after one warm-up)."""
    list(collect())
    runs = []
    for _ in range(scrapes):
        started = time.perf_counter()
        list(collect())
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def bench_cluster(node_counts: list[int], scrapes: int, background: bool) -> None:
    slo = load_slo()
    with tempfile.TemporaryDirectory() as tmp:
        single = RedisServer(Path(tmp) / "single").start()
        try:
            info = RedisInfoCollector(single.url, instance="single", timeout=2.0)
            base = timed(info.collect, scrapes)
            info.close()
        finally:
            single.stop()
        print(f"baseline: one standalone node, INFO scrape {base * 1e3:.2f} ms (median)")
        print(f"{'nodes':>5} {'masters':>7} {'scrape ms':>9} {'x single':>8} {'ms/node':>7}")
        for count in node_counts:
            replicas = 0 if count == 3 else 1
            cluster = LocalCluster(Path(tmp) / f"c{count}", masters=count // (1 + replicas),
                                   replicas=replicas).start()  # fmt: skip
            try:
                conn = redis.RedisCluster.from_url(cluster.url)  # type: ignore[no-untyped-call]
                for n in range(1000):
                    conn.set(f"user:{n}", "x" * 50)
                conn.close()
                collector = ClusterCollector(
                    cluster.url, slo, instance="seed", timeout=2.0, background=background,
                    sampler={"interval": 1.0}, refresh=3600, configure_notifications=True,
                )  # fmt: skip
                collector.start()
                seconds = timed(collector.collect, scrapes)
                collector.stop()
            finally:
                cluster.stop()
            print(
                f"{count:>5} {count // (1 + replicas):>7} {seconds * 1e3:>9.2f} "
                f"{seconds / base:>8.1f} {seconds / count * 1e3:>7.2f}"
            )


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def bench_targets(counts: list[int]) -> None:
    from fastapi.testclient import TestClient

    from exporter.config import SamplerOptions, Settings
    from exporter.server import create_app

    with tempfile.TemporaryDirectory() as tmp:
        servers = [RedisServer(Path(tmp) / f"r{n}").start() for n in range(max(counts) + 1)]
        try:
            for server in servers:
                with redis.Redis(port=server.port) as conn:
                    conn.mset({f"user:{n}": "u" for n in range(100)})
            for count in counts:
                settings = Settings(
                    redis_url=servers[0].url, scrape_allow=("127.0.0.1",),
                    scrape_max_targets=count + 1, sampler=SamplerOptions(interval=60.0),
                    configure_notifications=True,
                )  # fmt: skip
                with TestClient(create_app(settings, background=True)) as client:
                    client.get("/metrics")
                    client.get("/scrape", params={"target": servers[0].url})  # code paths
                    time.sleep(1.0)
                    gc.collect()
                    before, threads = rss_kib(), threading.active_count()
                    for server in servers[1 : count + 1]:
                        client.get("/scrape", params={"target": server.url})
                    time.sleep(3.0)  # every first cycle done: idle workers
                    gc.collect()
                    after, threads_after = rss_kib(), threading.active_count()
                per = (after - before) / count
                print(
                    f"{count:>4} idle targets: RSS {before / 1024:.1f} -> {after / 1024:.1f} MiB, "
                    f"{per:.0f} KiB per target; threads {threads} -> {threads_after} "
                    f"({(threads_after - threads) / count:.1f} per target)"
                )
        finally:
            for server in servers:
                server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    cluster = sub.add_parser("cluster")
    cluster.add_argument("--nodes", default="3,6,12,24")
    cluster.add_argument("--scrapes", type=int, default=30)
    cluster.add_argument("--background", action="store_true")
    targets = sub.add_parser("targets")
    targets.add_argument("--targets", default="10,40")
    args = parser.parse_args()
    if args.what == "cluster":
        nodes = [int(n) for n in args.nodes.split(",")]
        bench_cluster(nodes, args.scrapes, args.background)
    else:
        bench_targets([int(n) for n in args.targets.split(",")])


if __name__ == "__main__":
    main()
