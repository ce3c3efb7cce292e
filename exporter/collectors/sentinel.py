"""Sentinel's own view of the masters it watches, read when the target is a Sentinel.

A Sentinel answers ``INFO`` too (``redis_mode:sentinel``, a ``# Sentinel``
section whose plain fields are rows of :data:`exporter.metrics.REDIS_INFO_FIELDS`),
but its per-master settings and the health of each master's replicas and peer
Sentinels are only in ``SENTINEL MASTERS``, ``SENTINEL REPLICAS`` and
``SENTINEL SENTINELS``.  One round trip reads the masters, a second (pipelined)
the replicas and peers of each, as the Go redis_exporter's ``sentinels.go`` does,
with its metric names and labels.

Master names and addresses come from the Sentinel, so the masters are capped
(:data:`MAX_MASTERS`, the first in name order kept; the rest dropped and counted
in ``cache_exporter_series_dropped_total``), and every label value is cut to
printable text of bounded length.  A reply that is not what Sentinel sends (not a
list of field/value pairs) is skipped, never a failed scrape.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client.core import Metric

from exporter import metrics
from exporter.collectors.info_parser import label_text, number

#: masters reported per Sentinel (a Sentinel watches a handful; past this, dropped)
MAX_MASTERS = 64
#: replicas or peers read per master
MAX_PEERS = 256

Fields = dict[str, str]


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def flat_pairs(reply: Any) -> Fields:
    """``[b"name", b"mymaster", b"ip", ...]`` (RESP2) or a dict (RESP3) -> ``{str: str}``;
    ``{}`` for anything else."""
    if isinstance(reply, dict):
        return {_text(k): _text(v) for k, v in reply.items()}
    if isinstance(reply, list) and len(reply) % 2 == 0:
        return {_text(reply[i]): _text(reply[i + 1]) for i in range(0, len(reply), 2)}
    return {}


def records(reply: Any, most: int) -> list[Fields]:
    """A list reply of field/value records, at most ``most`` of them, bad ones left out."""
    if not isinstance(reply, list):
        return []
    found = (flat_pairs(item) for item in reply[:most])
    return [record for record in found if record]


def status_of(flags: str) -> str:
    """Sentinel's own status word for a master (as its INFO prints it)."""
    words = set(flags.split(","))
    if "o_down" in words:
        return "odown"
    if "s_down" in words:
        return "sdown"
    return "ok"


def _ok(records_: Sequence[Fields]) -> int:
    """Records not flagged subjectively or objectively down."""
    return sum(
        1
        for record in records_
        if not {"s_down", "o_down"} & set(record.get("flags", "").split(","))
    )


def read_masters(client: Any) -> tuple[list[Fields], list[Any], int]:
    """``(masters, [replicas, sentinels, ...] replies, masters dropped)``: two round trips."""
    every = records(client.execute_command("SENTINEL", "MASTERS"), 1 << 16)
    named = sorted((m for m in every if m.get("name")), key=lambda m: m["name"])
    kept = named[:MAX_MASTERS]
    pipe = client.pipeline(transaction=False)
    for master in kept:
        pipe.execute_command("SENTINEL", "REPLICAS", master["name"])
        pipe.execute_command("SENTINEL", "SENTINELS", master["name"])
    replies = pipe.execute(raise_on_error=False) if kept else []
    return kept, replies, len(every) - len(kept)


def sentinel_metrics(
    masters: Sequence[Fields],
    peers: Sequence[Any],
    instance: str,
    dropped_masters: int,
    dropped: Counter[str],
) -> Iterator[Metric]:
    """Families for the masters one Sentinel watches (``peers``: the REPLICAS and
    SENTINELS replies of each master, in order; an error reply counts as none)."""
    specs = (
        metrics.REDIS_SENTINEL_MASTER_STATUS,
        metrics.REDIS_SENTINEL_MASTER_SLAVES,
        metrics.REDIS_SENTINEL_MASTER_SENTINELS,
        metrics.REDIS_SENTINEL_MASTER_OK_SLAVES,
        metrics.REDIS_SENTINEL_MASTER_OK_SENTINELS,
    )
    families = {spec.name: spec.new_family() for spec in specs}
    settings = [(item, item.spec.new_family()) for item in metrics.REDIS_SENTINEL_MASTER_FIELDS]
    for index, master in enumerate(masters):
        name = label_text(master["name"])
        address = label_text(f"{master.get('ip', '')}:{master.get('port', '')}")
        labels = [instance, name, address]
        status = status_of(master.get("flags", ""))
        families[metrics.REDIS_SENTINEL_MASTER_STATUS.name].add_metric(
            [*labels, status], 1.0 if status == "ok" else 0.0
        )
        for spec, field, plus in (
            (metrics.REDIS_SENTINEL_MASTER_SLAVES, "num-slaves", 0.0),
            (metrics.REDIS_SENTINEL_MASTER_SENTINELS, "num-other-sentinels", 1.0),
        ):
            value = number(master.get(field, ""))
            if value is not None:
                families[spec.name].add_metric(labels, value + plus)
        replicas = peers[2 * index] if 2 * index < len(peers) else None
        sentinels = peers[2 * index + 1] if 2 * index + 1 < len(peers) else None
        families[metrics.REDIS_SENTINEL_MASTER_OK_SLAVES.name].add_metric(
            labels, float(_ok(records(replicas, MAX_PEERS)))
        )
        families[metrics.REDIS_SENTINEL_MASTER_OK_SENTINELS.name].add_metric(
            labels,
            float(_ok(records(sentinels, MAX_PEERS)) + 1),  # this Sentinel
        )
        for item, family in settings:
            value = number(master.get(item.field, ""))
            if value is not None:
                family.add_metric(labels, value / 1e3 if item.unit == "msec" else value)
    for spec in (*specs, *(item.spec for item in metrics.REDIS_SENTINEL_MASTER_FIELDS)):
        dropped[spec.name] += dropped_masters
    yield from families.values()
    for _, family in settings:
        yield family
