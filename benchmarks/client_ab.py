"""This client against a baseline commit's client, in one process, on one redis-server.

Separate runs of ``client_overhead.py`` on a shared, loaded machine move by several
percent from run to run, more than a change of a few percent.  This imports the
baseline's package (a ``git worktree`` of it, say main) under another name beside this
one and times raw redis-py, the baseline and this client interleaved, round by round,
with the order rotated: every ratio is a median of per-round ratios (wall and this
thread's CPU time), so a burst of load hits all three alike.

    git worktree add --detach /tmp/base main
    .venv/bin/python benchmarks/client_ab.py --base /tmp/base [--rounds 100] [--batch 200]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from prometheus_client import CollectorRegistry

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from exporter.client import CacheService
from tests.support.processes import RedisServer

VALUE = {"id": 42, "name": "Acme Corp", "plan": "enterprise", "seats": 250, "flags": ["a", "b"]}
_IMPORTS = re.compile(r"\b(from|import) exporter\b|\"exporter\.")


def import_base(base: Path, into: Path) -> Any:
    """The baseline's ``CacheService``, from its package copied as ``exporter_base``."""
    target = into / "exporter_base"
    shutil.copytree(base / "exporter", target)
    for path in target.rglob("*.py"):
        text = path.read_text()
        text = _IMPORTS.sub(lambda m: m.group(0).replace("exporter", "exporter_base"), text)
        path.write_text(text)
    sys.path.insert(0, str(into))
    from exporter_base.client import CacheService as Base  # type: ignore[import-not-found]

    return Base


def connect(port: int) -> redis.Redis:
    return redis.Redis(
        host="127.0.0.1", port=port, socket_timeout=0.25, socket_connect_timeout=0.25
    )


def run(base_class: Any, port: int, rounds: int, batch: int) -> None:
    raw = connect(port)
    base = base_class(connect(port), registry=CollectorRegistry())
    ours = CacheService(connect(port), registry=CollectorRegistry())
    hit = ours.key("organization", "42", tenant="tenant-1")
    miss = ours.key("organization", "missing", tenant="tenant-1")
    keys = [ours.key("user", str(n)) for n in range(100)]
    ours.set(hit, VALUE)
    ours.mset({k: VALUE for k in keys})
    computed_base = ours.key("organization", "computed-base", tenant="t")
    computed_ours = ours.key("organization", "computed-ours", tenant="t")
    base.get_or_compute(computed_base, lambda: VALUE)
    ours.get_or_compute(computed_ours, lambda: VALUE)
    loads = json.loads

    def raw_get(key: str) -> Callable[[], Any]:
        def call() -> Any:
            data = raw.get(key)
            return None if data is None else loads(data)

        return call

    ops: dict[str, dict[str, Callable[[], Any]]] = {
        "get (hit)": {
            "raw": raw_get(hit),
            "base": lambda: base.get(hit),
            "ours": lambda: ours.get(hit),
        },
        "get (miss)": {
            "raw": raw_get(miss),
            "base": lambda: base.get(miss),
            "ours": lambda: ours.get(miss),
        },
        "mget (100 keys)": {
            "raw": lambda: [None if d is None else loads(d) for d in raw.mget(keys)],
            "base": lambda: base.mget(keys),
            "ours": lambda: ours.mget(keys),
        },
        "get_or_compute (hit)": {
            "raw": raw_get(hit),
            "base": lambda: base.get_or_compute(computed_base, lambda: VALUE),
            "ours": lambda: ours.get_or_compute(computed_ours, lambda: VALUE),
        },
    }
    wall: dict[str, dict[str, list[float]]] = {op: {v: [] for v in vs} for op, vs in ops.items()}
    cpu: dict[str, dict[str, list[float]]] = {op: {v: [] for v in vs} for op, vs in ops.items()}
    for variants in ops.values():  # warm up
        for fn in variants.values():
            for _ in range(50):
                fn()
    for r in range(rounds):
        for op, variants in ops.items():
            names = list(variants)
            for name in names[r % 3 :] + names[: r % 3]:
                fn = variants[name]
                c0, t0 = time.thread_time(), time.perf_counter()
                for _ in range(batch):
                    fn()
                wall[op][name].append((time.perf_counter() - t0) / batch)
                cpu[op][name].append((time.thread_time() - c0) / batch)

    def ratio(per: dict[str, list[float]], a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(per[a], per[b], strict=True))

    print(f"redis-server on 127.0.0.1:{port}; {rounds} rounds x {batch} ops")
    print("µs: median per-op wall time; ratios: median of per-round ratios")
    print(
        f"{'operation':<22} {'raw µs':>7} {'base µs':>8} {'ours µs':>8} {'base/raw':>9} "
        f"{'ours/raw':>9} {'ours/base':>10} {'CPU ours/base':>14}"
    )
    for op, per in wall.items():
        med = {name: statistics.median(times) * 1e6 for name, times in per.items()}
        print(
            f"{op:<22} {med['raw']:>7.1f} {med['base']:>8.1f} {med['ours']:>8.1f} "
            f"{ratio(per, 'base', 'raw'):>9.3f} {ratio(per, 'ours', 'raw'):>9.3f} "
            f"{ratio(per, 'ours', 'base'):>10.3f} {ratio(cpu[op], 'ours', 'base'):>14.3f}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=Path, required=True, help="a checkout of the baseline")
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--batch", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base_class = import_base(args.base.resolve(), Path(tmp))
        server = RedisServer(Path(tmp) / "redis").start()
        try:
            run(base_class, server.port, args.rounds, args.batch)
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
