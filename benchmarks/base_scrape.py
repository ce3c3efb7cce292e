"""Base scrape time and RSS: ours (``serve``) vs the Go redis_exporter, same Redis, same traffic.

Issue 12 item 5.  For each keyspace size it starts its own redis-server, seeds
keys of ADR-004's types, starts a traffic process (pipelined GET/SET on seeded
keys, as fast as one connection goes), then runs ``prometheus-redis-exporter``
(INFO only: its default) and ``cache-slo-exporter serve`` (defaults: INFO with
its CONFIG GET follow-up, eviction tracker, sampler estimates) side by side and
scrapes them in turns (``--scrapes`` each), so load changes hit both alike.
Prints the median and p90 scrape time of each, the ratio, and RSS.  Then, in
process on the same Redis, what the INFO collector's follow-up (CONFIG GET, sent in
INFO's own round trip from the second scrape on) adds: ``collect()`` with and
without it, in turns.

    .venv/bin/python benchmarks/base_scrape.py [--sizes 20000,100000,1000000] [--scrapes 200]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from exporter_vs_redis_exporter import process, rss_mb, seed  # noqa: E402

from exporter.slo import load_slo  # noqa: E402
from tests.support.processes import RedisServer, free_port, require_binary  # noqa: E402


def _traffic(url: str, keys: list[str], stop: Any) -> None:
    client = redis.Redis.from_url(url)
    rng = random.Random(7)
    while not stop.is_set():
        pipe = client.pipeline(transaction=False)
        for _ in range(20):
            key = rng.choice(keys)
            if rng.random() < 0.9:
                pipe.get(key)
            else:
                pipe.set(key, b"x" * 512, ex=3600)
        pipe.execute()


def _time(http: httpx.Client, url: str) -> float:
    started = time.perf_counter()
    http.get(url).raise_for_status()
    return time.perf_counter() - started


def follow_up_cost(url: str, rounds: int) -> tuple[float, float]:
    """Median ``collect()`` of the INFO collector with its follow-ups and without."""
    from exporter.collectors.redis_info import RedisInfoCollector

    with_follow_ups = RedisInfoCollector(url, instance="bench")
    info_only = RedisInfoCollector(url, instance="bench")
    info_only._follow_ups = lambda info, tally, prefetched=None: []  # type: ignore[method-assign]
    times: dict[int, list[float]] = {0: [], 1: []}
    for _ in range(rounds):
        for which, collector in enumerate((with_follow_ups, info_only)):
            started = time.perf_counter()
            list(collector.collect())
            times[which].append(time.perf_counter() - started)
    with_follow_ups.close()
    info_only.close()
    return statistics.median(times[0]), statistics.median(times[1])


def run_size(size: int, scrapes: int, go_binary: str, workdir: Path) -> dict[str, Any]:
    server = RedisServer(workdir / "redis").start()
    client = redis.Redis.from_url(server.url)
    slo = load_slo(ROOT / "exporter" / "data" / "slo.yaml")
    seed(client, slo, size, 0.1, random.Random(1))
    keys = [k.decode() for k in client.scan_iter(count=1000)][:5000]
    stop = mp.Event()
    traffic = mp.Process(target=_traffic, args=(server.url, keys, stop), daemon=True)
    traffic.start()
    go_port, our_port = free_port(), free_port()
    go_args = [go_binary, "-redis.addr", f"redis://127.0.0.1:{server.port}",
               "-web.listen-address", f"127.0.0.1:{go_port}"]  # fmt: skip
    our_args = [str(Path(sys.executable).parent / "cache-slo-exporter"), "serve",
                "--redis-url", server.url, "--listen", f"127.0.0.1:{our_port}"]  # fmt: skip
    try:
        with (
            process(go_args, go_port, workdir / "go.log") as go,
            process(our_args, our_port, workdir / "ours.log") as ours,
            httpx.Client(timeout=60) as http,
        ):
            go_url = f"http://127.0.0.1:{go_port}/metrics"
            our_url = f"http://127.0.0.1:{our_port}/metrics"
            for _ in range(10):  # warm up both
                _time(http, go_url), _time(http, our_url)
            go_times, our_times = [], []
            for _ in range(scrapes):
                go_times.append(_time(http, go_url))
                our_times.append(_time(http, our_url))
            follow_ups = follow_up_cost(server.url, scrapes)
            return {
                "follow_ups": follow_ups,
                "size": size,
                "go": (statistics.median(go_times), statistics.quantiles(go_times, n=10)[-1]),
                "ours": (statistics.median(our_times), statistics.quantiles(our_times, n=10)[-1]),
                "go_rss": rss_mb(go.pid),
                "our_rss": rss_mb(ours.pid),
            }
    finally:
        stop.set()
        traffic.join(10)
        client.close()
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="20000,100000")
    parser.add_argument("--scrapes", type=int, default=200)
    args = parser.parse_args()
    go_binary = require_binary("prometheus-redis-exporter")
    print("size      Go median/p90 ms   ours median/p90 ms   ours/Go   RSS MB Go / ours")
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            try:
                r = run_size(size, args.scrapes, go_binary, Path(tmp))
            except Exception:
                for log in sorted(Path(tmp).glob("*.log")):
                    print(f"--- {log.name}\n{log.read_text()[-2000:]}", file=sys.stderr)
                raise
        (gm, gp), (om, op) = r["go"], r["ours"]
        print(
            f"{size:>8}  {gm * 1e3:7.2f} / {gp * 1e3:6.2f}    {om * 1e3:7.2f} / {op * 1e3:6.2f}"
            f"      {om / gm:5.2f}x   {r['go_rss']['rss_mb']:.0f} / {r['our_rss']['rss_mb']:.0f}"
        )
        both, info = r["follow_ups"]
        print(
            f"          INFO collector collect(): with CONFIG GET follow-up {both * 1e3:.2f} ms, "
            f"INFO only {info * 1e3:.2f} ms ({both / info:.2f}x)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
