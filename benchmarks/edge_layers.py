"""What the HTTP layers cost: the ASGI middleware per request, and the CDN log reader
per line.

1. Middleware: the same FastAPI app (one templated JSON route) driven in-process
   through httpx's ASGI transport, bare vs wrapped in ``CacheMetricsMiddleware``
   and vs prometheus-fastapi-instrumentator's middleware when it is installed
   (a baseline of what a library would cost); prints µs per request and the ratio.
2. CDN reader: ``--lines`` nginx log lines in the documented format read by one
   ``poll()``; prints lines per second.

    .venv/bin/python benchmarks/edge_layers.py [--requests 3000] [--lines 500000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from exporter.asgi import CacheMetricsMiddleware
from exporter.collectors.cdn_logs import CdnLogCollector, Source


def make_app(kind: str) -> Any:
    app = FastAPI()

    @app.get("/api/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    if kind == "ours":
        app.add_middleware(CacheMetricsMiddleware, registry=CollectorRegistry())
    elif kind == "instrumentator":
        from prometheus_fastapi_instrumentator import Instrumentator

        Instrumentator(registry=CollectorRegistry()).instrument(app)
    return app


async def per_request(kind: str, count: int) -> float:
    transport = httpx.ASGITransport(app=make_app(kind))
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for n in range(200):  # warm up
            await client.get(f"/api/items/{n}")
        started = time.perf_counter()
        for n in range(count):
            await client.get(f"/api/items/{n}")
        return (time.perf_counter() - started) / count * 1e6


class _Route:
    path = "/api/items/{item_id}"


async def _trivial(scope: Any, receive: Any, send: Any) -> None:
    """An ASGI app that does nothing but answer, as Starlette's router marks the route."""
    scope["route"] = _Route
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})  # fmt: skip
    await send({"type": "http.response.body", "body": b"{}"})


async def alone(app: Any, count: int) -> float:
    async def receive() -> dict[str, str]:
        return {"type": "http.request"}

    async def send(message: Any) -> None:
        return None

    started = time.perf_counter()
    for n in range(count):
        scope = {"type": "http", "method": "GET", "path": f"/api/items/{n}",
                 "headers": [(b"host", b"bench")], "app": None}  # fmt: skip
        await app(scope, receive, send)
    return (time.perf_counter() - started) / count * 1e6


def middleware_alone(count: int, rounds: int) -> None:
    """The middleware's own cost, without FastAPI and httpx around it."""
    ours = CacheMetricsMiddleware(_trivial, registry=CollectorRegistry())
    bare, wrapped = [], []
    for _ in range(rounds):
        bare.append(asyncio.run(alone(_trivial, count)))
        wrapped.append(asyncio.run(alone(ours, count)))
    b, w = statistics.median(bare), statistics.median(wrapped)
    print(f"middleware alone: {w - b:.1f} µs/request over a trivial ASGI app "
          f"({b:.1f} -> {w:.1f} µs, median of {rounds} rounds of {count})")  # fmt: skip


def middleware(count: int, rounds: int) -> None:
    kinds = ["bare", "ours"]
    try:
        import prometheus_fastapi_instrumentator  # noqa: F401

        kinds.append("instrumentator")
    except ImportError:
        print("(prometheus-fastapi-instrumentator not installed: no library baseline)")
    results: dict[str, list[float]] = {k: [] for k in kinds}
    for _ in range(rounds):  # interleaved, so drift hits every kind alike
        for kind in kinds:
            results[kind].append(asyncio.run(per_request(kind, count)))
    medians = {k: statistics.median(v) for k, v in results.items()}
    for kind, value in medians.items():
        print(f"{kind:>15}: {value:7.1f} µs/request (median of {rounds} rounds of {count})")
    print(f"middleware cost: {medians['ours'] - medians['bare']:.1f} µs/request, "
          f"ratio ours/bare {medians['ours'] / medians['bare']:.3f}")  # fmt: skip
    if "instrumentator" in medians:
        print(f"ratio ours/instrumentator {medians['ours'] / medians['instrumentator']:.3f}")


def reader(lines: int) -> None:
    line = (
        "time=2026-11-29T17:00:00+00:00\tmethod=GET\turi=/api/items/{n}\tstatus=200\t"
        "cache={cache}\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "cache.log"
        with open(log, "w") as out:
            for n in range(lines):
                out.write(line.format(n=n, cache="HIT" if n % 5 else "MISS"))
        size = log.stat().st_size
        collector = CdnLogCollector([Source("nginx", log)], Path(tmp) / "state.json")
        started = time.perf_counter()
        collector.poll()
        seconds = time.perf_counter() - started
        collector.close()
    print(f"CDN reader: {lines} lines ({size / 1e6:.0f} MB) in {seconds:.2f} s: "
          f"{lines / seconds:,.0f} lines/s")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--lines", type=int, default=500_000)
    args = parser.parse_args()
    middleware_alone(20 * args.requests, args.rounds)
    middleware(args.requests, args.rounds)
    reader(args.lines)


if __name__ == "__main__":
    main()
