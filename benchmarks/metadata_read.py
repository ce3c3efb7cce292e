"""What reading a value's early-refresh metadata in the same round trip costs, by design.

``get_or_compute`` needs, on every hit, the value plus its XFetch metadata (compute
time and expiry).  The value must stay plain JSON (other services read it), so the
metadata lives elsewhere; this compares the ways to fetch both in one round trip,
against a plain ``GET`` of the value (the baseline), on one real ``redis-server``:

- ``MGET key !xf:{key}``: value and companion key (the design chosen);
- a pipeline ``GET key`` + ``PTTL key`` + ``GET !xf:{key}`` (expiry from the TTL);
- one ``EVALSHA`` of a Lua script doing those three calls.

Variants run interleaved in rounds (order rotated every round); the table shows the
median per-call time and the median of per-round ratios to ``GET``.

    .venv/bin/python benchmarks/metadata_read.py [--rounds 30] [--batch 300]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.processes import RedisServer

VALUE = {"id": 42, "name": "Acme Corp", "plan": "enterprise", "seats": 250, "flags": ["a", "b"]}
SCRIPT = """
return {redis.call('get', KEYS[1]), redis.call('pttl', KEYS[1]), redis.call('get', KEYS[2])}
"""


def run(port: int, rounds: int, batch: int) -> None:
    r = redis.Redis(host="127.0.0.1", port=port, socket_timeout=0.25, socket_connect_timeout=0.25)
    key, meta = "organization:t1:42", "!xf:{organization:t1:42}"
    r.set(key, json.dumps(VALUE, separators=(",", ":")), px=3_600_000)
    r.set(meta, '{"delta":0.012,"expiry":1764434000.0,"crc32":123}', px=3_600_000)
    sha = r.script_load(SCRIPT)

    def pipeline() -> Any:
        pipe = r.pipeline(transaction=False)
        pipe.get(key)
        pipe.pttl(key)
        pipe.get(meta)
        return pipe.execute()

    variants: dict[str, Callable[[], Any]] = {
        "GET (baseline)": lambda: r.get(key),
        "MGET value + companion": lambda: r.mget(key, meta),
        "pipeline GET+PTTL+GET": pipeline,
        "EVALSHA (GET, PTTL, GET)": lambda: r.evalsha(sha, 2, key, meta),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for fn in variants.values():  # warm up
        for _ in range(100):
            fn()
    names = list(variants)
    for n in range(rounds):
        for name in names[n % len(names) :] + names[: n % len(names)]:
            fn = variants[name]
            t0 = time.perf_counter()
            for _ in range(batch):
                fn()
            times[name].append((time.perf_counter() - t0) / batch)
    base = times["GET (baseline)"]
    print(f"redis-server on 127.0.0.1:{port}; {rounds} rounds x {batch} calls")
    print(f"{'read':<26} {'µs':>7} {'ratio to GET':>13}")
    for name, per in times.items():
        ratio = statistics.median(t / b for t, b in zip(per, base, strict=True))
        print(f"{name:<26} {statistics.median(per) * 1e6:>7.1f} {ratio:>13.3f}")
    r.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--batch", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp)).start()
        try:
            run(server.port, args.rounds, args.batch)
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
