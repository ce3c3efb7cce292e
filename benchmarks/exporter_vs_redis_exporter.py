"""Our exporter vs the Go redis_exporter's key groups, on 10k / 100k / 1M keys.

For each keyspace size it starts its own redis-server (free loopback port,
temporary directory), seeds keys of ADR-004's types (pipelined, realistic value
sizes), computes the exact per-type count and ``MEMORY USAGE`` sum, then runs
side by side:

* ``prometheus-redis-exporter -check-key-groups`` (one Lua pattern per SLO
  prefix): the scrape scans the whole keyspace;
* ``prometheus-redis-exporter`` without key groups (INFO only, for reference);
* ``cache-slo-exporter serve`` (INFO collector, background sampler with its
  default batch/pause/budget/max_keys but ``--sample-interval 0.01``, so it
  samples all the time: the worst case for Redis), eviction tracker.

It prints the scrape time (median of ``--scrapes``), Redis GET p50/p99 from a
probe process (one GET per millisecond on seeded keys) when idle, during the
Go exporter's scrapes, during our sampling and during our scrapes, each
exporter's RSS (current and peak), and the error of our per-type estimates
against the exact count, plus ratios.  Then, in-process, a sampled cycle
(``max_keys`` = a fifth of the keyspace) shows the error of a partial pass.

    .venv/bin/python benchmarks/exporter_vs_redis_exporter.py [--sizes 10000,100000]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from exporter.collectors.keyspace_sampler import (  # noqa: E402
    DEFAULT_BATCH_SIZE,
    KeyspaceSampler,
)
from exporter.metrics import CACHE_KEYS, CACHE_SIZE, SAMPLER_CYCLES, TYPE_OTHER  # noqa: E402
from exporter.slo import SLO, load_slo  # noqa: E402
from tests.support.processes import (  # noqa: E402
    RedisServer,
    cleanup_env,
    free_port,
    require_binary,
    wait_for_port,
)

#: share of keys and value bytes per key type (ADR-004's sizing, shares evened out so
#: every type is a fair test; analytics scaled down from 50 KB to keep 1M keys in RAM)
MIX: dict[str, tuple[float, int]] = {
    "session": (0.20, 2_000),
    "user": (0.15, 5_000),
    "organization": (0.05, 10_000),
    "permissions": (0.15, 1_000),
    "api-key": (0.05, 200),
    "rate-limit": (0.05, 8),
    "llm-response": (0.22, 5_000),
    "analytics": (0.02, 20_000),
    "feature-flag": (0.03, 300),
    TYPE_OTHER: (0.08, 500),
}
PROBE_INTERVAL = 0.001
IDLE_SECONDS = 5.0
MIN_SAMPLING_SECONDS = 5.0


# --- the keyspace --------------------------------------------------------------------


def key_name(slo: SLO, kind: str, i: int) -> str:
    if kind == TYPE_OTHER:
        return f"misc:{i}"
    kt = slo.key_type(kind)
    return f"{kt.prefix}:tenant-{i % 50}:{i}" if kt.tenant_scoped else f"{kt.prefix}:{i:x}"


def seed(client: Any, slo: SLO, count: int, scale: float, rng: random.Random) -> Counter[str]:
    kinds = list(MIX)
    weights = [share for share, _ in MIX.values()]
    blob = b"x" * int(max(size for _, size in MIX.values()) * scale * 1.2 + 16)
    written: Counter[str] = Counter()
    pipe = client.pipeline(transaction=False)
    for i, kind in enumerate(rng.choices(kinds, weights, k=count)):
        size = max(1, int(MIX[kind][1] * scale * rng.uniform(0.8, 1.2)))
        pipe.set(key_name(slo, kind, i), blob[:size])
        written[kind] += 1
        if len(pipe) >= 5000:
            pipe.execute()
    pipe.execute()
    return written


def exact(client: Any, slo: SLO) -> tuple[Counter[str], Counter[str]]:
    counts: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    cursor = 0
    while True:
        cursor, keys = client.scan(cursor, count=5000)
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.execute_command("MEMORY USAGE", key, "SAMPLES", 0)
        for key, size in zip(keys, pipe.execute(), strict=True):
            kind = slo.type_of_key(key)
            counts[kind] += 1
            sizes[kind] += int(size)
        if cursor == 0:
            return counts, sizes


# --- the GET probe (own process: no GIL shared with the scrapers) ---------------------


def _probe_main(url: str, keys: list[str], conn: Connection) -> None:
    client = redis.Redis.from_url(url)
    while True:
        if conn.recv() != "start":
            return
        latencies: list[float] = []
        while not conn.poll():
            key = random.choice(keys)
            started = time.perf_counter()
            client.get(key)
            latencies.append(time.perf_counter() - started)
            time.sleep(PROBE_INTERVAL)
        conn.recv()  # "stop"
        conn.send(latencies)


class Probe:
    """GET latency from another process, between ``start()`` and ``stop()``."""

    def __init__(self, url: str, keys: list[str]) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_probe_main, args=(url, keys, child), daemon=True)
        self._proc.start()

    def start(self) -> None:
        self._conn.send("start")

    def stop(self) -> dict[str, float]:
        self._conn.send("stop")
        latencies = sorted(self._conn.recv())
        return {
            "gets": len(latencies),
            "p50_ms": 1000 * latencies[len(latencies) // 2],
            "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
        }

    def measure(self, action: Callable[[], Any]) -> tuple[Any, dict[str, float]]:
        self.start()
        try:
            result = action()
        finally:
            stats = self.stop()
        return result, stats

    def close(self) -> None:
        self._conn.send("quit")
        self._proc.join(10)


# --- exporters -------------------------------------------------------------------------


def rss_mb(pid: int) -> dict[str, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024
    return {"rss_mb": fields["VmRSS"], "peak_rss_mb": fields["VmHWM"]}


def reset_redis_stats(client: Any) -> None:
    client.config_resetstat()


def redis_side(client: Any, commands: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Server-side cost per call of ``commands`` since the last CONFIG RESETSTAT.

    Unlike the probe, this does not depend on how busy the machine's CPUs are: it is
    how long Redis' single thread was occupied by one call (an EVALSHA runs its whole
    batch of SCAN + MEMORY USAGE as one block).
    """
    stats = client.info("commandstats")
    latency = client.info("latencystats")
    found: dict[str, dict[str, float]] = {}
    for command in commands:
        calls = stats.get(f"cmdstat_{command}")
        if not calls:
            continue
        percentiles = latency.get(f"latency_percentiles_usec_{command}", {})
        found[command] = {
            "calls": float(calls["calls"]),
            "usec_per_call": float(calls["usec_per_call"]),
            "p99_usec": float(percentiles.get("p99", 0.0)),
            "p99.9_usec": float(percentiles.get("p99.9", 0.0)),
        }
    return found


@contextmanager
def process(args: list[str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=cleanup_env())
        try:
            wait_for_port(port, timeout=30, proc=proc)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def scrape_times(
    http: httpx.Client, url: str, count: int, min_seconds: float = 3.0
) -> tuple[list[float], str]:
    """At least ``count`` scrapes and ``min_seconds`` (enough GETs for the probe's p99)."""
    times, text = [], ""
    deadline = time.monotonic() + min_seconds
    while len(times) < count or time.monotonic() < deadline:
        started = time.perf_counter()
        response = http.get(url)
        times.append(time.perf_counter() - started)
        response.raise_for_status()
        text = response.text
    return times, text


def samples(text: str, name: str) -> dict[str, float]:
    """``{type or key_group: value}`` of one metric from an exposition text."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        labels, _, value = line[len(name) + 1 :].rpartition("} ")
        pairs = dict(part.split("=", 1) for part in labels.split(",") if "=" in part)
        label = pairs.get("type", pairs.get("key_group", "")).strip('"')
        found[label] = found.get(label, 0.0) + float(value)
    return found


def max_error(estimate: dict[str, float], truth: Counter[str]) -> tuple[float, str]:
    worst, where = 0.0, ""
    for kind, value in truth.items():
        error = abs(estimate.get(kind, 0.0) - value) / value
        if error >= worst:
            worst, where = error, kind
    return worst, where


def lua_groups(slo: SLO) -> str:
    """One Lua pattern per SLO prefix; the capture is the group name."""
    escape = str.maketrans({c: "%" + c for c in "-.+*?^$()[]%"})
    return ",".join(f"^({kt.prefix.translate(escape)}):" for kt in slo.key_types)


def go_exporter(
    binary: str, server: RedisServer, slo: SLO, probe: Probe, scrapes: int, workdir: Path
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    client = redis.Redis.from_url(server.url)
    addr = f"redis://127.0.0.1:{server.port}"
    for mode, extra in (
        ("plain", []),
        ("key_groups", ["-check-key-groups", lua_groups(slo), "-max-distinct-key-groups", "50"]),
    ):
        port = free_port()
        args = [binary, "-redis.addr", addr, "-web.listen-address", f"127.0.0.1:{port}", *extra]
        with (
            process(args, port, workdir / f"go-{mode}.log") as proc,
            httpx.Client(timeout=600) as http,
        ):
            url = f"http://127.0.0.1:{port}/metrics"
            reset_redis_stats(client)
            (times, text), latency = probe.measure(lambda url=url: scrape_times(http, url, scrapes))
            results[mode] = {
                "scrape_median_s": statistics.median(times),
                "get_during_scrapes": latency,
                "redis_side": redis_side(client, ("evalsha", "eval", "info", "get")),
                **rss_mb(proc.pid),
            }
            if mode == "key_groups":
                results[mode]["key_group_count"] = samples(text, "redis_key_group_count")
    client.close()
    return results


def ours(
    server: RedisServer, probe: Probe, scrapes: int, workdir: Path, truth: tuple[Counter[str], ...]
) -> dict[str, Any]:
    port = free_port()
    binary = str(Path(sys.executable).parent / "cache-slo-exporter")
    args = [
        binary,
        "serve",
        "--redis-url",
        server.url,
        "--listen",
        f"127.0.0.1:{port}",
        "--sample-interval",
        "0.01",
    ]
    url = f"http://127.0.0.1:{port}/metrics"
    with process(args, port, workdir / "ours.log") as proc, httpx.Client(timeout=60) as http:

        def first_cycles() -> str:
            started = time.monotonic()
            while True:
                text = http.get(url).text
                done = samples(text, SAMPLER_CYCLES.name).get("", 0)
                if done >= 1 and time.monotonic() - started >= MIN_SAMPLING_SECONDS:
                    return text
                time.sleep(0.5)

        client = redis.Redis.from_url(server.url)
        reset_redis_stats(client)
        text, sampling = probe.measure(first_cycles)
        sampling_side = redis_side(client, ("scan", "memory|usage", "get"))
        (times, _), scraping = probe.measure(lambda: scrape_times(http, url, scrapes))
        client.close()
        keys, size = samples(text, CACHE_KEYS.name), samples(text, CACHE_SIZE.name)
        cycle = samples(text, "cache_exporter_sampler_cycle_duration_seconds").get("", 0.0)
        sampled = samples(text, "cache_exporter_sampler_keys_sampled").get("", 0.0)
        return {
            "scrape_median_s": statistics.median(times),
            "get_during_sampling": sampling,
            "redis_side_sampling": sampling_side,
            "get_during_scrapes": scraping,
            "cycle_s": cycle,
            "keys_sampled": sampled,
            "count_error": max_error(keys, truth[0]),
            "size_error": max_error(size, truth[1]),
            **rss_mb(proc.pid),
        }


def sampled_cycle(
    server: RedisServer, slo: SLO, size: int, truth: tuple[Counter[str], ...]
) -> dict[str, Any]:
    sampler = KeyspaceSampler(server.url, slo, instance="bench", max_keys=max(1, size // 5))
    try:
        estimate = sampler.run_cycle()
    finally:
        sampler.stop()
    assert estimate is not None
    return {
        "max_keys": sampler.max_keys,
        "keys_sampled": estimate.sampled,
        "cycle_s": estimate.duration,
        "count_error": max_error(dict(estimate.keys), truth[0]),
        "size_error": max_error(dict(estimate.size_bytes), truth[1]),
    }


# --- driver ----------------------------------------------------------------------------


def run_size(size: int, args: argparse.Namespace, slo: SLO, go_binary: str) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{size}-"))
    server = RedisServer(workdir / "redis").start()
    probe: Probe | None = None
    try:
        client = redis.Redis.from_url(server.url)
        started = time.perf_counter()
        written = seed(client, slo, size, args.value_scale, random.Random(size))
        seeded_s = time.perf_counter() - started
        counts, sizes = exact(client, slo)
        assert counts == written, "seeded keyspace does not match the exact count"
        used = int(client.info("memory")["used_memory"])
        probe = Probe(server.url, [k.decode() for k in client.scan(0, count=2000)[1]])
        _, idle = probe.measure(lambda: time.sleep(IDLE_SECONDS))
        result: dict[str, Any] = {
            "keys": size,
            "seed_s": seeded_s,
            "redis_used_memory_mb": used / 2**20,
            "get_idle": idle,
            "go": go_exporter(go_binary, server, slo, probe, args.scrapes, workdir),
            "ours": ours(server, probe, args.scrapes, workdir, (counts, sizes)),
            "ours_sampled": sampled_cycle(server, slo, size, (counts, sizes)),
        }
        client.close()
        return result
    finally:
        if probe is not None:
            probe.close()
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def report(result: dict[str, Any]) -> None:
    go, me, part = result["go"], result["ours"], result["ours_sampled"]
    kg, plain = go["key_groups"], go["plain"]
    idle = result["get_idle"]

    def lat(stats: dict[str, float]) -> str:
        return f"p50 {stats['p50_ms']:.3f} ms  p99 {stats['p99_ms']:.3f} ms  ({stats['gets']} GETs)"

    print(f"\n=== {result['keys']:,} keys ({result['redis_used_memory_mb']:.0f} MB in Redis) ===")
    print(f"seeded in {result['seed_s']:.1f}s")
    print(f"GET idle                              {lat(idle)}")
    print(f"GET during Go key-group scrapes       {lat(kg['get_during_scrapes'])}")
    print(f"GET during Go plain scrapes           {lat(plain['get_during_scrapes'])}")
    print(f"GET during our sampling               {lat(me['get_during_sampling'])}")
    print(f"GET during our scrapes                {lat(me['get_during_scrapes'])}")
    print(
        f"scrape median: Go key groups {kg['scrape_median_s']:.3f}s, Go plain "
        f"{plain['scrape_median_s']:.3f}s, ours {me['scrape_median_s']:.3f}s"
    )
    print(
        f"RSS MB (now/peak): Go key groups {kg['rss_mb']:.0f}/{kg['peak_rss_mb']:.0f}, "
        f"Go plain {plain['rss_mb']:.0f}/{plain['peak_rss_mb']:.0f}, "
        f"ours {me['rss_mb']:.0f}/{me['peak_rss_mb']:.0f}"
    )
    print(
        f"our sampler: cycle {me['cycle_s']:.1f}s over {me['keys_sampled']:.0f} keys; worst "
        f"error count {100 * me['count_error'][0]:.2f}% ({me['count_error'][1]}), "
        f"size {100 * me['size_error'][0]:.2f}% ({me['size_error'][1]})"
    )
    print(
        f"partial pass (max_keys {part['max_keys']}): {part['keys_sampled']} keys in "
        f"{part['cycle_s']:.1f}s; worst error count {100 * part['count_error'][0]:.2f}% "
        f"({part['count_error'][1]}), size {100 * part['size_error'][0]:.2f}% "
        f"({part['size_error'][1]})"
    )
    go_call = kg["redis_side"].get("evalsha") or kg["redis_side"].get("eval") or {}
    our_side = me["redis_side_sampling"]
    scan, usage = our_side.get("scan", {}), our_side.get("memory|usage", {})
    batch = DEFAULT_BATCH_SIZE
    our_block = scan.get("p99_usec", 0.0) + batch * usage.get("usec_per_call", 0.0)
    print(
        f"Redis-side block per call: Go key-group EVALSHA mean "
        f"{go_call.get('usec_per_call', 0.0) / 1000:.2f} ms, p99 "
        f"{go_call.get('p99_usec', 0.0) / 1000:.2f} ms ({go_call.get('calls', 0):.0f} calls); "
        f"ours: SCAN p99 {scan.get('p99_usec', 0.0) / 1000:.2f} ms + {batch} x MEMORY USAGE "
        f"{usage.get('usec_per_call', 0.0):.1f} us = {our_block / 1000:.2f} ms per batch"
    )
    print("ratios:")
    ratio = kg["scrape_median_s"] / me["scrape_median_s"]
    print(f"  scrape time Go key groups / ours        {ratio:.1f}x")
    print(
        f"  GET p99 during Go key groups / idle     "
        f"{kg['get_during_scrapes']['p99_ms'] / idle['p99_ms']:.2f}x"
    )
    print(
        f"  GET p99 during our sampling / idle      "
        f"{me['get_during_sampling']['p99_ms'] / idle['p99_ms']:.2f}x "
        f"(+{me['get_during_sampling']['p99_ms'] - idle['p99_ms']:.3f} ms)"
    )
    if our_block:
        block = go_call.get("p99_usec", 0.0) / our_block
        print(f"  Redis block p99 Go EVALSHA / our batch  {block:.1f}x")
    print(f"  peak RSS ours / Go key groups           {me['peak_rss_mb'] / kg['peak_rss_mb']:.1f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="10000,100000,1000000", help="keyspace sizes, comma separated"
    )
    parser.add_argument("--scrapes", type=int, default=5, help="scrapes per exporter (median)")
    parser.add_argument("--value-scale", type=float, default=1.0, help="multiply value sizes")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    slo = load_slo(None)
    go_binary = require_binary("prometheus-redis-exporter")
    results = []
    for size in sizes:
        result = run_size(size, args, slo, go_binary)
        report(result)
        results.append(result)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
