"""How long a ``get`` takes when Redis is frozen, black-holed or dead, at concurrency.

Fail open is only half the promise: a call must also return within its configured
timeout, however many callers wait at once.  For each failure, each side (sync
``CacheService`` with threads, ``AsyncCacheService`` with tasks on one event loop)
and each number of concurrent callers, a fresh service (fresh pool, fresh breaker)
gets one wave of callers, each calling ``get`` once, all started together; the table
shows the p50, p99 and p100 of their latencies, the configured timeouts beside them,
and the error classes the service counted.  Every call must return ``None`` (a
miss); an exception reaching a caller is reported and fails the run.

The failing servers (:mod:`tests.client.fault_servers`), all on loopback, need no
root and no iptables:

- **frozen**: a socket server that accepts every connection and never answers;
- **black-holed**: a listening socket with ``listen(0)`` whose one-slot accept queue
  is filled by a connection nobody accepts: the kernel then drops every further SYN,
  so connects hang until their timeout (checked before use);
- **dead**: a closed port (connection refused at once).

    .venv/bin/python benchmarks/failure_latency.py [--socket-timeout 0.25]
        [--connect-timeout 0.25] [--callers 1,10,50,200] [--reps 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from exporter.client import AsyncCacheService, CacheService
from tests.client.fault_servers import FAULTS, fault_server

KEY = "user:1"
#: (latency of each call, what reached a caller, error classes counted)
Outcome = tuple[list[float], list[str], dict[str, float]]


def errors_counted(registry: CollectorRegistry) -> dict[str, float]:
    counted: dict[str, float] = {}
    for metric in registry.collect():
        if metric.name != "cache_errors":
            continue
        for s in metric.samples:
            if s.name.endswith("_total") and s.value and s.labels.get("operation") == "get":
                counted[s.labels["error"]] = counted.get(s.labels["error"], 0) + s.value
    return counted


def run_sync(url: str, callers: int, options: dict[str, Any]) -> Outcome:
    registry = CollectorRegistry()
    service = CacheService.from_url(url, registry=registry, **options)
    barrier = threading.Barrier(callers)
    latencies: list[float] = []
    failures: list[str] = []

    def call() -> None:
        barrier.wait()
        t0 = time.perf_counter()
        try:
            value = service.get(KEY)
        except BaseException as exc:  # a caller must never see one
            failures.append(type(exc).__name__)
        else:
            if value is not None:
                failures.append(f"value {value!r}")
        latencies.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=call) for _ in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counted = errors_counted(registry)
    service.close()
    return latencies, failures, counted


def run_async(url: str, callers: int, options: dict[str, Any]) -> Outcome:
    async def main() -> Outcome:
        registry = CollectorRegistry()
        service = AsyncCacheService.from_url(url, registry=registry, **options)
        latencies: list[float] = []
        failures: list[str] = []

        async def call() -> None:
            t0 = time.perf_counter()
            try:
                value = await service.get(KEY)
            except BaseException as exc:  # a caller must never see one
                failures.append(type(exc).__name__)
            else:
                if value is not None:
                    failures.append(f"value {value!r}")
            latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(call() for _ in range(callers)))
        counted = errors_counted(registry)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(service.aclose(), 5)
        return latencies, failures, counted

    return asyncio.run(main())


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


@contextlib.contextmanager
def server(kind: str) -> Iterator[Any]:
    srv = fault_server(kind)
    try:
        yield srv
    finally:
        srv.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--socket-timeout", type=float, default=0.25)
    parser.add_argument("--connect-timeout", type=float, default=0.25)
    parser.add_argument("--callers", default="1,10,50,200")
    parser.add_argument("--reps", type=int, default=3, help="waves (fresh services) per cell")
    parser.add_argument("--servers", default=",".join(FAULTS))
    parser.add_argument("--sides", default="sync,async")
    args = parser.parse_args()
    options = {
        "socket_timeout": args.socket_timeout,
        "socket_connect_timeout": args.connect_timeout,
    }
    budget = args.socket_timeout + args.connect_timeout
    print(
        f"socket_timeout={args.socket_timeout}s socket_connect_timeout={args.connect_timeout}s "
        f"(a call's bound: connect + socket = {budget:g}s); {args.reps} wave(s) per cell\n"
    )
    print("| Redis | side | callers | p50 s | p99 s | p100 s | p100 / bound | errors (get) |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    bad = 0
    runners = {"sync": run_sync, "async": run_async}
    for kind in args.servers.split(","):
        with server(kind) as srv:
            url = srv.url
            for side in args.sides.split(","):
                for callers in map(int, args.callers.split(",")):
                    latencies: list[float] = []
                    failures: list[str] = []
                    counted: dict[str, float] = {}
                    for _ in range(args.reps):
                        lat, fail, errs = runners[side](url, callers, options)
                        srv.reset()
                        latencies += lat
                        failures += fail
                        for err, n in errs.items():
                            counted[err] = counted.get(err, 0) + n
                    p100 = max(latencies)
                    errs_text = ", ".join(f"{e} {n:g}" for e, n in sorted(counted.items()))
                    if failures:
                        bad += 1
                        errs_text += f"; CALLER SAW: {sorted(set(failures))}"
                    print(
                        f"| {kind} | {side} | {callers} | {percentile(latencies, 50):.3f} | "
                        f"{percentile(latencies, 99):.3f} | {p100:.3f} | {p100 / budget:.2f} | "
                        f"{errs_text} |",
                        flush=True,
                    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
