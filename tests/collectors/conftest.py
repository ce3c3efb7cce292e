"""Fixtures and helpers for the background collectors' tests: seeded keyspaces."""

from __future__ import annotations

import random
from collections import Counter

import pytest
import redis

from exporter.metrics import TYPE_OTHER
from exporter.slo import SLO, load_slo

#: key shapes of ADR-004 (the shipped SLO file's prefixes) plus keys of no type
KEY_SHAPES: dict[str, str] = {
    "session": "session:{i:08x}",
    "user": "user:{i}",
    "organization": "organization:tenant-{t}:{i}",
    "llm-response": "llm-response:{i:016x}",
    TYPE_OTHER: "misc:{i}",
}


@pytest.fixture(scope="session")
def slo() -> SLO:
    return load_slo(None)


def seed(
    client: redis.Redis,
    count: int,
    *,
    rng: random.Random,
    start: int = 0,
    sizes: tuple[int, int] = (40, 400),
    ttl_ms: tuple[int, int] | None = None,
) -> Counter[str]:
    """Write ``count`` string keys of random ADR types; returns keys written per type."""
    written: Counter[str] = Counter()
    kinds = list(KEY_SHAPES)
    pipe = client.pipeline(transaction=False)
    for i in range(start, start + count):
        kind = rng.choice(kinds)
        key = KEY_SHAPES[kind].format(i=i, t=i % 7)
        if kind == TYPE_OTHER and i % 2:
            key = f"nocolon{i}"
        value = b"v" * rng.randint(*sizes)
        px = rng.randint(*ttl_ms) if ttl_ms else None
        pipe.set(key, value, px=px)
        written[kind] += 1
        if len(pipe) >= 2000:
            pipe.execute()
    pipe.execute()
    return written


def exact_by_type(client: redis.Redis, slo: SLO) -> tuple[Counter[str], Counter[str]]:
    """Exact per-type key counts and MEMORY USAGE (SAMPLES 0) sums of one database."""
    keys = set(client.scan_iter(count=1000))
    counts: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    batch = list(keys)
    for at in range(0, len(batch), 2000):
        chunk = batch[at : at + 2000]
        pipe = client.pipeline(transaction=False)
        for key in chunk:
            pipe.execute_command("MEMORY USAGE", key, "SAMPLES", 0)
        for key, size in zip(chunk, pipe.execute(), strict=True):
            kind = slo.type_of_key(key)
            counts[kind] += 1
            sizes[kind] += int(size)
    return counts, sizes
