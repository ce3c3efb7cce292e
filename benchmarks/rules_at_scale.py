"""The generated rules in a real Prometheus with N app instances x D days of history.

For each configuration (N instances, D days) this script

1. models a fleet of N instances of an instrumented application (``job="cache-app"``):
   per key type of the SLO file a read rate and a hit ratio that change from day to
   day and by instance (and a heavy bad day every five days), a daily traffic curve, a latency
   histogram (``exporter.metrics.LATENCY_BUCKETS``) whose shape changes by day and by
   instance, ``cache_errors_total``, and pod restarts (counter resets, plus one
   fleet-wide rollout).  Every counter is a closed-form function of the scrape index,
   so the exact hit ratio and latency good ratio of any window are known;
2. streams D days of scrapes (every 60 s, to keep the data small) as OpenMetrics text,
   one file per 18 h TSDB block (two worker processes), and turns each into a block
   with ``promtool tsdb create-blocks-from openmetrics`` (the file is deleted once
   its block is written);
3. gives the rules that read recorded series over long ranges (``sum_over_time(X[30d])``)
   the history Prometheus would have recorded: every series named inside a
   ``*_over_time(...)`` of the rule files is evaluated from the model at every
   evaluation (60 s) and written into the same blocks.  The evaluator understands
   the subset of PromQL such base recordings use (``sum by/without``, ``rate``,
   ``increase``, ``+ - * /``, numbers, other records) and refuses anything else in
   one line.  ``--check-recorded`` compares it with ``promtool tsdb
   create-blocks-from rules`` run against a real Prometheus holding the raw data;
4. starts a real ``prometheus`` on a free loopback port over a hard-linked copy of the
   blocks, with the rule files, scraping the live continuation of the same model
   (so the short windows see current data), waits for a few evaluations of every
   group and reads each group's ``evaluationTime`` from ``/api/v1/rules`` (median of
   the evaluations after the first), then reads the SLO-window SLIs
   (``cache_type:cache_hit_ratio:rate30d`` per type, the latency good ratio) and
   compares them with the exact ratios over the same window.

A configuration ``NxDrK`` writes raw scrapes for the last K days only (the recorded
series still cover D days): rules whose long windows read recorded series do not need more,
so N = 128 x 30 days stays small; rules reading raw counters over 30 days cannot run
on such data and are reported as ``n/a``.

Targets (issue #11): every group of the new rules evaluates in under 0.5 s at
N = 128 with 30 days, and every SLO-window SLI is within 0.1 percentage point of the
exact ratio.  The exit code is 1 when the new rules miss a measured target.

    .venv/bin/python benchmarks/rules_at_scale.py                       # the issue's table
    .venv/bin/python benchmarks/rules_at_scale.py --configs 8x3 --only old
    .venv/bin/python benchmarks/rules_at_scale.py --configs 128x30r2 --only new
    .venv/bin/python benchmarks/rules_at_scale.py --check-recorded --configs none
    .venv/bin/python benchmarks/rules_at_scale.py --rules-old DIR --rules-new DIR

Old rules: ``alerts/*.rules.yml`` of ``--old-ref`` (0fa048f, before issue #11); new
rules: those of ``--new-ref`` (HEAD).  Evaluation times are wall-clock: on a shared
machine they move with its load, which each run prints.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import http.server
import math
import multiprocessing
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from exporter import metrics as m  # noqa: E402
from exporter.rules import conventions as c  # noqa: E402
from exporter.slo import load_slo  # noqa: E402
from tests.support.processes import free_port  # noqa: E402
from tests.support.prometheus import PrometheusServer, promtool  # noqa: E402

STEP = 60  # scrape and evaluation interval, seconds
OFFSET = 15  # scrapes at :15 of every minute, evaluations of backfilled records at :00
BLOCK = 18 * 3600  # one OpenMetrics file -> one promtool block of 18 h
JOB = "cache-app"
LAYER = "redis"
ERROR_RATIO = 0.0005
ERROR_CLASS = "timeout"
SLI_TARGET_PP = 0.1
EVAL_TARGET_S = 0.5
OLD_REF = "0fa048f"


# --- the fleet model ---------------------------------------------------------------


@dataclass
class Fleet:
    """N instances x D days: per-minute traffic shared by all, scaled per instance.

    Instance i reads ``w[i] * base_t(minute)`` keys of type t per minute with hit ratio
    ``h_t(day) + delta[i][t]``; its latency follows one of three profiles whose shape
    changes by day.  Prefix sums over minutes make every counter and every exact
    window ratio O(1).  Scrape k happens at ``t0 + 60 k`` and shows minutes ``< k``.
    """

    n: int
    days: int
    types: list[str]
    t0: int
    k_data: int  # index of the last backfilled scrape
    k_max: int  # arrays run this far (live continuation)
    raw_from: int  # first scrape index written as raw data
    buckets: tuple[float, ...]
    good_bucket: int
    w: list[float] = field(default_factory=list)
    delta: list[list[float]] = field(default_factory=list)
    lat_class: list[int] = field(default_factory=list)
    init: list[float] = field(default_factory=list)
    restarts: list[list[int]] = field(default_factory=list)
    reads: list[array[float]] = field(default_factory=list)  # P_t[k]
    hits: list[array[float]] = field(default_factory=list)  # PH_t[k]
    calls: array[float] = field(default_factory=lambda: array("d"))  # PC[k]
    le: list[list[array[float]]] = field(default_factory=list)  # PL[class][j][k]

    def scrape_time(self, k: int) -> int:
        return self.t0 + STEP * k

    def restart_base(self, i: int, k: int) -> int:
        """Scrape index whose value a restart before scrape ``k`` counts from (-1: none)."""
        r = self.restarts[i]
        pos = bisect.bisect_right(r, k) - 1
        return r[pos] - 1 if pos >= 0 else -1

    # aggregated (sum over instances) cumulative counts, resets removed: what rate() sees
    def agg_hits(self, t: int, k: int) -> float:
        return self._ws * self.hits[t][k] + self._dsum[t] * self.reads[t][k]

    def agg_reads(self, t: int, k: int) -> float:
        return self._ws * self.reads[t][k]

    def agg_le(self, j: int, k: int) -> float:
        if j >= len(self.buckets):
            return self._ws * self.calls[k]
        return sum(self._wclass[cl] * self.le[cl][j][k] for cl in range(3))

    def prepare(self) -> None:
        self._ws = sum(self.w)
        self._dsum = [
            sum(self.w[i] * self.delta[i][t] for i in range(self.n)) for t in range(len(self.types))
        ]
        self._wclass = [
            sum(w for w, cl in zip(self.w, self.lat_class, strict=True) if cl == x)
            for x in range(3)
        ]

    def exact(self, k_from: int, k_to: int) -> dict[str, float]:
        """Exact hit ratio per type, ``all``, and latency good ratio over scrapes (k_from, k_to]."""
        out: dict[str, float] = {}
        tot_h = tot_r = 0.0
        for t, name in enumerate(self.types):
            h = self.agg_hits(t, k_to) - self.agg_hits(t, k_from)
            r = self.agg_reads(t, k_to) - self.agg_reads(t, k_from)
            out[name] = h / r
            tot_h += h
            tot_r += r
        out["all"] = tot_h / tot_r
        g = self.agg_le(self.good_bucket, k_to) - self.agg_le(self.good_bucket, k_from)
        a = self.agg_le(len(self.buckets), k_to) - self.agg_le(len(self.buckets), k_from)
        out["latency"] = g / a
        return out


def lognormal_cdf(x: float, median: float, sigma: float) -> float:
    return 0.5 * (1 + math.erf(math.log(x / median) / (sigma * math.sqrt(2))))


def build_fleet(
    n: int,
    days: int,
    raw_days: int,
    types: list[str],
    objectives: dict[str, float],
    threshold: float,
    live_minutes: int,
    seed: int,
) -> Fleet:
    """Draw the fleet and fill the prefix sums; data ends at the last minute before now."""
    rnd = random.Random(seed)
    now = int(time.time()) // STEP * STEP
    t0 = now - days * 86400 + OFFSET - STEP
    k_data = days * 1440
    buckets = m.LATENCY_BUCKETS
    good = min(range(len(buckets)), key=lambda j: abs(buckets[j] - threshold))
    if abs(buckets[good] - threshold) > 1e-9:
        raise SystemExit(f"latency threshold {threshold}s is not a bucket of LATENCY_BUCKETS")
    fl = Fleet(
        n,
        days,
        types,
        t0,
        k_data,
        k_data + live_minutes,
        max(0, k_data - raw_days * 1440),
        buckets,
        good,
    )
    nt = len(types)
    # per type: reads/s of one instance, base hit ratio
    rate = [rnd.choice([2, 5, 8, 12, 20, 30, 45]) * rnd.uniform(0.8, 1.2) for _ in types]
    base_h = [
        min(0.97, objectives[name] + rnd.uniform(0.01, 0.04))
        if name in objectives
        else rnd.uniform(0.6, 0.95)
        for name in types
    ]
    n_days = days + live_minutes // 1440 + 2
    traffic = [rnd.uniform(0.6, 1.4) for _ in range(n_days)]
    h_day = [
        [min(0.95, max(0.05, base_h[t] + rnd.gauss(0, 0.015))) for t in range(nt)]
        for _ in range(n_days)
    ]
    boost = [[1.0] * nt for _ in range(n_days)]
    for d in range(max(0, days - 2), n_days, 5):  # a heavy bad day: 2x traffic, -12 pp
        t = rnd.randrange(nt)
        h_day[d][t] = max(0.05, h_day[d][t] - 0.12)
        boost[d][t] = 2.0
    lat_median = [median * rnd.uniform(0.8, 1.5) for median in (0.0008, 0.0015, 0.003)]
    lat_day = [[lat_median[cl] * rnd.uniform(0.8, 1.6) for cl in range(3)] for _ in range(n_days)]
    cdf = [
        [[lognormal_cdf(b, lat_day[d][cl], 0.6) for b in buckets] for cl in range(3)]
        for d in range(n_days)
    ]
    fl.w = [rnd.uniform(0.5, 1.5) for _ in range(n)]
    fl.delta = [[rnd.uniform(-0.02, 0.02) for _ in range(nt)] for _ in range(n)]
    fl.lat_class = [rnd.choice([0, 0, 1, 1, 1, 2]) for _ in range(n)]
    fl.init = [rnd.uniform(60, 3000) for _ in range(n)]  # minutes of traffic before the data
    rollout = k_data // 2
    for _ in range(n):
        rs = sorted(
            {rnd.randrange(2, k_data) for _ in range(max(1, days * 2 // 3))}
            | {rollout + rnd.randrange(10)}
        )
        fl.restarts.append(rs)
    size = fl.k_max + 1
    fl.reads = [array("d", bytes(8 * size)) for _ in range(nt)]
    fl.hits = [array("d", bytes(8 * size)) for _ in range(nt)]
    fl.calls = array("d", bytes(8 * size))
    fl.le = [[array("d", bytes(8 * size)) for _ in buckets] for _ in range(3)]
    acc_r = [0.0] * nt
    acc_h = [0.0] * nt
    acc_c = 0.0
    acc_l = [[0.0] * len(buckets) for _ in range(3)]
    day0 = (t0 // 86400) * 86400
    for k in range(1, size):
        minute_start = t0 + STEP * (k - 1)
        d = min(n_days - 1, (minute_start - t0) // 86400)
        phase = 2 * math.pi * ((minute_start - day0) % 86400) / 86400
        curve = traffic[d] * (1 + 0.45 * math.sin(phase - 2.0))
        calls = 0.0
        for t in range(nt):
            r = rate[t] * 60 * curve * boost[d][t]
            acc_r[t] += r
            acc_h[t] += r * h_day[d][t]
            fl.reads[t][k] = acc_r[t]
            fl.hits[t][k] = acc_h[t]
            calls += r
        acc_c += calls
        fl.calls[k] = acc_c
        for cl in range(3):
            row = cdf[d][cl]
            acc = acc_l[cl]
            dest = fl.le[cl]
            for j in range(len(buckets)):
                acc[j] += calls * row[j]
                dest[j][k] = acc[j]
    fl.prepare()
    return fl


# --- raw series of one instance ------------------------------------------------------------


def sort_key(kv: tuple[str, str]) -> tuple[bool, str]:
    """``__name__`` first, then label names in order: one text per label set."""
    return kv[0] != "__name__", kv[0]


def shown_labels(labels: dict[str, str]) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items() if k not in ("service", "slo"))
    return f"{{{inner}}}" if inner else ""


def fmt_labels(labels: dict[str, str]) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items() if k != "__name__")
    return f"{labels['__name__']}{{{inner}}}"


@dataclass
class RawSeries:
    """One raw series per instance: its labels (without instance) and its cumulative value."""

    labels: dict[str, str]
    kind: str  # hits, misses, le, errors
    index: int  # type index or bucket index


def raw_series(fl: Fleet, operation: str) -> list[RawSeries]:
    out: list[RawSeries] = []
    hits, misses = m.CACHE_HITS.name, m.CACHE_MISSES.name
    for t, name in enumerate(fl.types):
        out.append(
            RawSeries({"__name__": hits, "job": JOB, "layer": LAYER, "type": name}, "hits", t)
        )
        out.append(
            RawSeries({"__name__": misses, "job": JOB, "layer": LAYER, "type": name}, "misses", t)
        )
    lat = m.CACHE_LATENCY.name
    for j, b in enumerate(fl.buckets):
        out.append(
            RawSeries(
                {
                    "__name__": f"{lat}_bucket",
                    "job": JOB,
                    "layer": LAYER,
                    "operation": operation,
                    "le": repr(b),
                },
                "le",
                j,
            )
        )
    nb = len(fl.buckets)
    out.append(
        RawSeries(
            {
                "__name__": f"{lat}_bucket",
                "job": JOB,
                "layer": LAYER,
                "operation": operation,
                "le": "+Inf",
            },
            "le",
            nb,
        )
    )
    out.append(
        RawSeries(
            {"__name__": f"{lat}_count", "job": JOB, "layer": LAYER, "operation": operation},
            "le",
            nb,
        )
    )
    out.append(
        RawSeries(
            {
                "__name__": m.CACHE_ERRORS.name,
                "job": JOB,
                "layer": LAYER,
                "operation": operation,
                "error": ERROR_CLASS,
            },
            "errors",
            nb,
        )
    )
    return out


Terms: TypeAlias = "tuple[array[float], float, array[float], float]"


def terms(fl: Fleet, s: RawSeries, i: int) -> Terms:
    """Instance i's reset-free counter of series s as ``w * (c1 * a1[k] + c2 * a2[k])``."""
    w = fl.w[i]
    if s.kind in ("hits", "misses"):
        reads, hits, d = fl.reads[s.index], fl.hits[s.index], fl.delta[i][s.index]
        if s.kind == "hits":
            return hits, w, reads, w * d
        return reads, w * (1 - d), hits, -w
    if s.index >= len(fl.buckets):
        return fl.calls, w * (ERROR_RATIO if s.kind == "errors" else 1.0), fl.calls, 0.0
    return fl.le[fl.lat_class[i]][s.index], w, fl.calls, 0.0


def instance_value(fl: Fleet, tm: Terms, i: int, k: int, since: int) -> float:
    """Counter value of instance i at scrape k, counting from scrape ``since`` (-1: start)."""
    a1, c1, a2, c2 = tm
    if since < 0:
        # before its first restart the process had run `init` minutes at the first minute's rate
        init = fl.init[i]
        return c1 * (a1[k] + init * a1[1]) + c2 * (a2[k] + init * a2[1])
    return c1 * (a1[k] - a1[since]) + c2 * (a2[k] - a2[since])


def agg_cumulative(fl: Fleet, s: RawSeries) -> array[float]:
    """Sum over instances of the reset-free counter: what ``sum(rate())`` differentiates."""
    out = array("d", bytes(8 * (fl.k_max + 1)))
    for k in range(fl.k_max + 1):
        if s.kind == "hits":
            v = fl.agg_hits(s.index, k)
        elif s.kind == "misses":
            v = fl.agg_reads(s.index, k) - fl.agg_hits(s.index, k)
        else:
            v = fl.agg_le(s.index, k)
            if s.kind == "errors":
                v *= ERROR_RATIO
        out[k] = v
    return out


# --- a small PromQL subset, evaluated on the model -----------------------------------------

TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)|(?P<dur>\[\s*\d+[smhdwy]\s*\])"
    r"|(?P<str>\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')|(?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)"
    r"|(?P<op>=~|!~|!=|==|>=|<=|[-+*/(){},=<>%^]))"
)
Vector = dict[frozenset[tuple[str, str]], float]


class Unsupported(Exception):
    """An expression outside the subset this benchmark can evaluate itself."""


def tokenize(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        mt = TOKEN.match(text, pos)
        if mt is None or mt.end() == pos:
            raise Unsupported(f"cannot read {text[pos : pos + 30]!r}")
        kind = mt.lastgroup or ""
        out.append((kind, mt.group(kind)))
        pos = mt.end()
    return out


def duration_s(text: str) -> int:
    text = text.strip("[] ")
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}[text[-1]]
    return int(text[:-1]) * unit


class Parser:
    """Recursive descent over the subset; nodes are tuples."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = tokenize(text)
        self.i = 0

    def peek(self) -> tuple[str, str]:
        return self.toks[self.i] if self.i < len(self.toks) else ("eof", "")

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if value is not None and tok[1] != value:
            raise Unsupported(f"expected {value!r}, found {tok[1]!r} in {self.text!r}")
        self.i += 1
        return tok

    def parse(self) -> Any:
        node = self.expr()
        if self.peek()[0] != "eof":
            raise Unsupported(f"unexpected {self.peek()[1]!r}")
        return node

    def expr(self) -> Any:
        node = self.term()
        while self.peek()[1] in ("+", "-"):
            op = self.take()[1]
            node = ("bin", op, node, self.term())
        return node

    def term(self) -> Any:
        node = self.unary()
        while self.peek()[1] in ("*", "/"):
            op = self.take()[1]
            node = ("bin", op, node, self.unary())
        return node

    def labels(self) -> list[str]:
        self.take("(")
        names: list[str] = []
        while self.peek()[1] != ")":
            names.append(self.take()[1])
            if self.peek()[1] == ",":
                self.take(",")
        self.take(")")
        return names

    def unary(self) -> Any:
        kind, val = self.peek()
        if kind == "num":
            self.take()
            return ("num", float(val))
        if val == "(":
            self.take("(")
            node = self.expr()
            self.take(")")
            return node
        if val == "sum":
            self.take()
            mode, names = "by", []
            if self.peek()[1] in ("by", "without"):
                mode = self.take()[1]
                names = self.labels()
            self.take("(")
            inner = self.expr()
            self.take(")")
            if self.peek()[1] in ("by", "without"):
                mode = self.take()[1]
                names = self.labels()
            return ("sum", mode, names, inner)
        if val in ("rate", "increase"):
            self.take()
            self.take("(")
            sel = self.selector()
            kind2, dur = self.take()
            if kind2 != "dur":
                raise Unsupported(f"{val}() without a range in {self.text!r}")
            self.take(")")
            return (val, sel, duration_s(dur))
        if kind == "ident" or val == "{":
            if self.i + 1 < len(self.toks) and self.toks[self.i + 1][1] == "(":
                raise Unsupported(f"function or aggregation {val}() is outside the subset")
            return self.selector()
        raise Unsupported(f"{val!r} is outside the subset")

    def selector(self) -> Any:
        name = None
        if self.peek()[0] == "ident":
            name = self.take()[1]
        matchers: list[tuple[str, str, str]] = []
        if self.peek()[1] == "{":
            self.take("{")
            while self.peek()[1] != "}":
                label = self.take()[1]
                op = self.take()[1]
                value = self.take()[1][1:-1]
                matchers.append((label, op, value))
                if self.peek()[1] == ",":
                    self.take(",")
            self.take("}")
        if name:
            matchers.append(("__name__", "=", name))
        return ("sel", matchers)


def matches(labels: dict[str, str], matchers: list[tuple[str, str, str]]) -> bool:
    for label, op, value in matchers:
        have = labels.get(label, "")
        ok = have == value if op in ("=", "!=") else re.fullmatch(value, have) is not None
        if ok != (op in ("=", "=~")):
            return False
    return True


class ModelEvaluator:
    """Evaluates recording rules of the subset at backfill times, from the fleet model."""

    def __init__(
        self, fl: Fleet, series: list[RawSeries], records: dict[str, list[dict[str, Any]]]
    ):
        self.fl = fl
        self.series = series
        self.records = records
        self.cum: dict[int, array[float]] = {}
        self.parsed: dict[str, Any] = {}
        self.selected: dict[tuple[tuple[str, str, str], ...], list[int]] = {}

    def cumulative(self, idx: int) -> array[float]:
        if idx not in self.cum:
            self.cum[idx] = agg_cumulative(self.fl, self.series[idx])
        return self.cum[idx]

    def range_fn(
        self, fn: str, matchers: list[tuple[str, str, str]], window: int, t: int
    ) -> Vector:
        """``rate``/``increase`` as Prometheus 2.x computes them (extrapolation included),
        summed per label set: every instance has the same scrape times, so the sum of the
        instances' rates is the rate of their summed reset-free counters."""
        fl = self.fl
        k_last = min(fl.k_max, (t - fl.t0) // STEP)
        k_first = max(0, -((fl.t0 - (t - window)) // STEP))
        out: Vector = {}
        if k_last - k_first < 1:
            return out
        sampled = STEP * (k_last - k_first)
        avg = sampled / (k_last - k_first)
        to_start = fl.scrape_time(k_first) - (t - window)
        to_end = t - fl.scrape_time(k_last)
        ext = float(sampled)
        ext += to_start if to_start < avg * 1.1 else avg / 2
        ext += to_end if to_end < avg * 1.1 else avg / 2
        key_m = tuple(matchers)
        if key_m not in self.selected:
            self.selected[key_m] = [
                i for i, s in enumerate(self.series) if matches(s.labels, matchers)
            ]
        for idx in self.selected[key_m]:
            s = self.series[idx]
            cum = self.cumulative(idx)
            value = (cum[k_last] - cum[k_first]) * ext / sampled
            if fn == "rate":
                value /= window
            key = frozenset((k, v) for k, v in s.labels.items() if k != "__name__")
            out[key] = out.get(key, 0.0) + value  # instances share labels once instance is gone
        return out

    def eval(self, node: Any, t: int) -> Vector | float:
        kind = node[0]
        if kind == "num":
            return float(node[1])
        if kind in ("rate", "increase"):
            return self.range_fn(kind, node[1][1], node[2], t)
        if kind == "sel":
            name = next((v for lab, op, v in node[1] if lab == "__name__" and op == "="), None)
            if name is None or name not in self.records:
                raise Unsupported(
                    f"instant selector of {name!r}: only recorded series are supported"
                )
            rest = [mt for mt in node[1] if mt[0] != "__name__"]
            out: Vector = {}
            for key, value in self.record(name, t).items():
                if matches(dict(key), rest):
                    out[frozenset(kv for kv in key if kv[0] != "__name__")] = value
            return out
        if kind == "sum":
            _, mode, names, inner = node
            vec = self.eval(inner, t)
            if not isinstance(vec, dict):
                raise Unsupported("sum() of a number")
            summed: Vector = {}
            for key, value in vec.items():
                keep = frozenset((k, v) for k, v in key if (k in names) == (mode == "by"))
                summed[keep] = summed.get(keep, 0.0) + value
            return summed
        if kind == "bin":
            _, op, left, right = node
            a, b = self.eval(left, t), self.eval(right, t)
            f: Callable[[float, float], float] = {
                "+": lambda x, y: x + y,
                "-": lambda x, y: x - y,
                "*": lambda x, y: x * y,
                "/": lambda x, y: (
                    x / y if y else (math.nan if x == 0 else math.copysign(math.inf, x))
                ),
            }[op]
            if isinstance(a, float) and isinstance(b, float):
                return f(a, b)
            if isinstance(a, float):
                assert isinstance(b, dict)
                return {k: f(a, v) for k, v in b.items()}
            if isinstance(b, float):
                return {k: f(v, b) for k, v in a.items()}
            return {k: f(v, b[k]) for k, v in a.items() if k in b}
        raise Unsupported(str(kind))

    def record(self, name: str, t: int) -> Vector:
        out: Vector = {}
        for rule in self.records[name]:
            expr = str(rule["expr"])
            if expr not in self.parsed:
                self.parsed[expr] = Parser(expr).parse()
            vec = self.eval(self.parsed[expr], t)
            if not isinstance(vec, dict):
                raise Unsupported(f"record {name} is a number")
            extra = {str(k): str(v) for k, v in (rule.get("labels") or {}).items()}
            for key, value in vec.items():
                labels = dict(key)
                labels.update(extra)
                labels["__name__"] = name
                out[frozenset(labels.items())] = value
        return out


# --- rule files ---------------------------------------------------------------------------------

OVER_TIME = re.compile(r"\b[a-z]+_over_time\s*\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)")


@dataclass
class RuleSet:
    name: str
    files: list[Path]
    records: dict[str, list[dict[str, Any]]]
    intervals: dict[str, int]  # record name -> its group's interval, s
    history: list[str]  # records read over a range by *_over_time: need backfilled history

    @property
    def reads_raw_long(self) -> bool:
        """True when some rule reads a raw counter over more than a day (old style)."""
        for rules in self.records.values():
            for rule in rules:
                for mt in re.finditer(r"\[(\d+[smhdwy])\]", str(rule["expr"])):
                    if duration_s(mt.group(1)) > 86400 and "_over_time" not in str(rule["expr"]):
                        return True
        return False


def load_rules(name: str, directory: Path) -> RuleSet:
    files = sorted(directory.glob("*.rules.yml"))
    if not files:
        raise SystemExit(f"{directory}: no *.rules.yml files")
    records: dict[str, list[dict[str, Any]]] = {}
    intervals: dict[str, int] = {}
    history: list[str] = []
    for path in files:
        doc = yaml.safe_load(path.read_text("utf-8")) or {}
        for group in doc.get("groups", []):
            interval = duration_s(str(group.get("interval", f"{STEP}s")))
            for rule in group.get("rules", []):
                for mt in OVER_TIME.finditer(str(rule.get("expr", ""))):
                    if mt.group(1) not in history:
                        history.append(mt.group(1))
                if "record" in rule:
                    records.setdefault(rule["record"], []).append(rule)
                    intervals[rule["record"]] = interval
    history = [h for h in history if h in records]
    for h in history:
        if intervals[h] != STEP:
            raise SystemExit(
                f"{name}: record {h} is evaluated every {intervals[h]}s; "
                f"this benchmark backfills recorded history every {STEP}s only"
            )
    return RuleSet(name, files, records, intervals, history)


def rules_from_ref(ref: str, dest: Path) -> Path:
    """The committed generated rules (alerts/*.rules.yml) of a git ref, written to dest."""
    dest.mkdir(parents=True, exist_ok=True)
    names = subprocess.run(
        ["git", "-C", str(ROOT), "ls-tree", "--name-only", f"{ref}:alerts"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in names:
        if name.endswith(".rules.yml"):
            text = subprocess.run(
                ["git", "-C", str(ROOT), "show", f"{ref}:alerts/{name}"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            (dest / name).write_text(text, "utf-8")
    return dest


# --- writing blocks ----------------------------------------------------------------------------


@dataclass
class Plan:
    fl: Fleet
    series: list[RawSeries]
    recorded: list[
        tuple[str, array[float], int]
    ]  # (series text, values by eval index, first index)
    out: Path
    work: Path


_PLAN: Plan | None = None  # set before forking the workers


def backfill_times(fl: Fleet) -> tuple[int, int]:
    """First and last evaluation time of backfilled records (:00, 45 s after a scrape)."""
    return fl.scrape_time(5) + STEP - OFFSET, fl.scrape_time(fl.k_data) + STEP - OFFSET


def write_shard(bounds: tuple[int, int]) -> tuple[int, float]:
    """Write the OpenMetrics file of one block, run promtool on it, delete it."""
    assert _PLAN is not None
    plan, (lo, hi) = _PLAN, bounds
    fl = plan.fl
    path = plan.work / f"shard-{lo}.om"
    started = time.monotonic()
    instances = [f"app-{i:03d}" for i in range(fl.n)]
    prefixes = [
        [fmt_labels({**s.labels, "instance": inst}) + " " for s in plan.series]
        for inst in instances
    ]
    tms = [[terms(fl, s, i) for s in plan.series] for i in range(fl.n)]
    rec_first, _ = backfill_times(fl)
    k_lo = max(fl.raw_from, -((fl.t0 - lo) // STEP))
    k_hi = min(fl.k_data, (hi - 1 - fl.t0) // STEP)
    written = 0
    with path.open("w", encoding="utf-8", buffering=1 << 20) as f:
        f.write(f"# TYPE {m.CACHE_HITS.name.removesuffix('_total')} counter\n")
        # raw scrapes and recorded series, time-major: every series' samples ascend
        for k in range(max(0, -((fl.t0 - (lo - STEP)) // STEP)), k_hi + 1):
            ts_raw = fl.scrape_time(k)
            lines: list[str] = []
            if k >= k_lo and lo <= ts_raw < hi:
                ts = f" {ts_raw}\n"
                for i in range(fl.n):
                    since = fl.restart_base(i, k)
                    init = fl.init[i] if since < 0 else 0.0
                    for pre, (a1, c1, a2, c2) in zip(prefixes[i], tms[i], strict=True):
                        # instance_value(), inlined: this loop writes every raw sample
                        if since < 0:
                            v = c1 * (a1[k] + init * a1[1]) + c2 * (a2[k] + init * a2[1])
                        else:
                            v = c1 * (a1[k] - a1[since]) + c2 * (a2[k] - a2[since])
                        lines.append(f"{pre}{v:.3f}{ts}")
            t_rec = ts_raw + STEP - OFFSET
            if lo <= t_rec < hi and t_rec >= rec_first:
                ts = f" {t_rec}\n"
                for text, values, first in plan.recorded:
                    j = (t_rec - rec_first) // STEP - first
                    if 0 <= j < len(values):
                        v = values[j]
                        lines.append(f"{text} {'NaN' if math.isnan(v) else repr(v)}{ts}")
            written += len(lines)
            f.write("".join(lines))
        f.write("# EOF\n")
    size = path.stat().st_size
    if not written:
        path.unlink()
        return 0, time.monotonic() - started
    done = promtool(
        "tsdb",
        "create-blocks-from",
        "openmetrics",
        "--max-block-duration=18h",
        "--quiet",
        path,
        plan.out,
    )
    path.unlink()
    if done.returncode != 0:
        raise RuntimeError(f"promtool on {path.name}: {done.stderr.strip()[-500:]}")
    return size, time.monotonic() - started


def compute_recorded(
    fl: Fleet,
    series: list[RawSeries],
    rules: RuleSet | None,
) -> list[tuple[str, array[float], int]]:
    if rules is None or not rules.history:
        return []
    ev = ModelEvaluator(fl, series, rules.records)
    first, last = backfill_times(fl)
    by_series: dict[str, array[float]] = {}
    n = (last - first) // STEP + 1
    for j in range(n):
        t = first + j * STEP
        for name in rules.history:
            for key, value in ev.record(name, t).items():
                text = fmt_labels(dict(sorted(key, key=sort_key)))
                if text not in by_series:
                    by_series[text] = array("d", [math.nan] * n)
                by_series[text][j] = value
    return [(text, values, 0) for text, values in by_series.items()]


def write_blocks(
    fl: Fleet,
    series: list[RawSeries],
    recorded: list[tuple[str, array[float], int]],
    out: Path,
    work: Path,
    workers: int,
) -> tuple[int, float]:
    global _PLAN
    _PLAN = Plan(fl, series, recorded, out, work)
    start = fl.scrape_time(0)
    end = fl.scrape_time(fl.k_data) + STEP
    shards = []
    lo = start // BLOCK * BLOCK
    while lo < end:
        shards.append((lo, lo + BLOCK))
        lo += BLOCK
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(workers) as pool:
        results = pool.map(write_shard, shards, chunksize=1)
    _PLAN = None
    return sum(r[0] for r in results), sum(r[1] for r in results)


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# --- the live continuation -----------------------------------------------------------------------


class LiveTarget:
    """Serves the fleet's current counters (text format, job/instance labels in the body)."""

    def __init__(self, fl: Fleet, series: list[RawSeries]) -> None:
        self.fl, self.series = fl, series
        handler = self._handler()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def body(self) -> bytes:
        fl = self.fl
        k = min(fl.k_max, (int(time.time()) - fl.t0) // STEP)
        lines = []
        for i in range(fl.n):
            since = fl.restart_base(i, k)
            for s in self.series:
                labels = {**s.labels, "instance": f"app-{i:03d}"}
                lines.append(
                    f"{fmt_labels(labels)} {instance_value(fl, terms(fl, s, i), i, k, since):.3f}\n"
                )
        return "".join(lines).encode()

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        target = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = target.body()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def __enter__(self) -> LiveTarget:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- one Prometheus run ----------------------------------------------------------------------


@dataclass
class RunResult:
    rules: str
    groups: dict[str, list[float]]  # group -> evaluation times (s), first one dropped
    errors: list[str]
    sli: dict[str, tuple[float, float]]  # type or "latency" -> (from the rules, exact)
    note: str = ""
    slowest_rules: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    load: tuple[float, float] = (math.nan, math.nan)  # 1-min load average at start and end

    def group_time(self, g: str) -> float:
        return statistics.median(self.groups[g]) if self.groups[g] else math.nan

    @property
    def max_time(self) -> float:
        times = [self.group_time(g) for g in self.groups]
        return max(times) if times else math.nan

    @property
    def max_diff_pp(self) -> float:
        diffs = [abs(a - b) * 100 for a, b in self.sli.values()]
        return max(diffs) if diffs else math.nan


def run_prometheus(
    fl: Fleet,
    series: list[RawSeries],
    rules: RuleSet,
    blocks: Path,
    work: Path,
    evaluations: int,
    max_wait: float,
    window: int,
    hit_record: str,
    latency_record: str,
) -> RunResult:
    """Prometheus over a hard-linked copy of the blocks; group times and SLIs once settled."""
    workdir = work / f"prom-{rules.name}"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    subprocess.run(["cp", "-al", str(blocks), str(workdir / "data")], check=True)
    with LiveTarget(fl, series) as target:
        config = {
            "global": {
                "scrape_interval": f"{STEP}s",
                "evaluation_interval": f"{STEP}s",
                "scrape_timeout": "10s",
            },
            "scrape_configs": [
                {
                    "job_name": JOB,
                    "honor_labels": True,
                    "static_configs": [{"targets": [target.address]}],
                }
            ],
        }
        prom = PrometheusServer(
            workdir,
            config,
            rule_files=rules.files,
            extra_args=[
                "--storage.tsdb.retention.time=400d",
                "--storage.tsdb.min-block-duration=2h",
                "--storage.tsdb.max-block-duration=2h",
            ],
        )
        prom.start(timeout=180)
        load_start = os.getloadavg()[0]
        try:
            seen: dict[str, dict[str, float]] = {}
            rule_times: dict[str, dict[str, dict[str, float]]] = {}  # group -> rule -> time -> s
            errors: set[str] = set()
            deadline = time.monotonic() + max_wait
            while time.monotonic() < deadline:
                for g in prom.rule_groups():
                    last = g.get("lastEvaluation", "")
                    if last and not last.startswith("0001"):
                        seen.setdefault(g["name"], {})[last] = float(g["evaluationTime"])
                    if last and not last.startswith("0001"):
                        for r in g["rules"]:
                            what = f"{r.get('name')}{shown_labels(r.get('labels') or {})}"
                            rule_times.setdefault(g["name"], {}).setdefault(what, {})[last] = float(
                                r.get("evaluationTime", math.nan)
                            )
                    for r in g["rules"]:
                        if r.get("lastError"):
                            errors.add(f"{g['name']}/{r.get('name')}: {r['lastError'][:200]}")
                if seen and all(len(v) > evaluations for v in seen.values()):
                    break
                time.sleep(1.0)
            groups = {g: [v[x] for x in sorted(v)][1:] for g, v in seen.items()}
            sli: dict[str, tuple[float, float]] = {}
            for record, label in ((hit_record, "type"), (latency_record, "")):
                stamps = {
                    frozenset(s["metric"].items()): float(s["value"][1])
                    for s in prom.query(f"timestamp({record})")
                }
                for sample in prom.query(record):
                    labels = {a: b for a, b in sample["metric"].items() if a != "__name__"}
                    ts = int(stamps[frozenset(labels.items())])
                    key = labels.get(label, "") if label else "latency"
                    k_to = min(fl.k_max, (ts - fl.t0) // STEP)
                    k_from = max(0, -((fl.t0 - (ts - window)) // STEP))
                    sli[key] = (float(sample["value"][1]), fl.exact(k_from, k_to)[key])
        finally:
            prom.stop()
    slowest = {
        g: sorted(
            (
                (what, statistics.median([ts[x] for x in sorted(ts)][1:] or list(ts.values())))
                for what, ts in rs.items()
            ),
            key=lambda x: -x[1],
        )[:4]
        for g, rs in rule_times.items()
    }
    return RunResult(
        rules.name,
        groups,
        sorted(errors),
        sli,
        slowest_rules=slowest,
        load=(load_start, os.getloadavg()[0]),
    )


# --- checking the recorded history against promtool ------------------------------------------


def check_recorded(
    rules: RuleSet,
    slo_types: list[str],
    objectives: dict[str, float],
    threshold: float,
    operation: str,
    work: Path,
) -> float:
    """Model-written records vs ``promtool tsdb create-blocks-from rules`` on N=8, 1 day."""
    fl = build_fleet(8, 1, 1, slo_types, objectives, threshold, 60, seed=7)
    series = raw_series(fl, operation)
    raw = work / "check-raw"
    write_blocks(fl, series, [], raw, work, 2)
    evaluator = ModelEvaluator(fl, series, rules.records)
    model: dict[int, dict[str, float]] = {}  # time -> series text -> value
    first, last = backfill_times(fl)
    base = work / "check-base.rules.yml"
    base.write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {
                        "name": "base",
                        "rules": [r for name in rules.history for r in rules.records[name]],
                    }
                ]
            }
        ),
        "utf-8",
    )
    workdir = work / "check-prom"
    workdir.mkdir()
    subprocess.run(["cp", "-al", str(raw), str(workdir / "data")], check=True)
    out = work / "check-rules"
    with PrometheusServer(
        workdir,
        {"global": {"evaluation_interval": f"{STEP}s"}},
        extra_args=["--storage.tsdb.retention.time=400d"],
    ) as prom:
        done = promtool(
            "tsdb",
            "create-blocks-from",
            "rules",
            f"--start={first}",
            f"--end={last}",
            f"--url={prom.url}",
            f"--eval-interval={STEP}s",
            f"--output-dir={out}",
            base,
        )
        if done.returncode != 0:
            raise RuntimeError(f"promtool create-blocks-from rules: {done.stderr[-800:]}")
    (out / "wal").mkdir(exist_ok=True)  # `promtool tsdb dump` opens the directory as a DB
    dump = promtool("tsdb", "dump", out)
    if dump.returncode != 0:
        raise RuntimeError(f"promtool tsdb dump: {dump.stderr[-800:]}")

    worst = 0.0
    where = ""
    count = 0
    for line in dump.stdout.splitlines():
        mt = re.match(r"(\{.*\}) (\S+) (\d+)$", line)
        if not mt:
            continue
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', mt.group(1)))
        text = fmt_labels(dict(sorted(labels.items(), key=sort_key)))
        ts = int(mt.group(3)) // 1000
        # promtool evaluates at the group's own offset in the minute (as Prometheus does):
        # the model is evaluated at the very same times
        if ts not in model:
            model[ts] = {
                fmt_labels(dict(sorted(key, key=sort_key))): value
                for name in rules.history
                for key, value in evaluator.record(name, ts).items()
            }
        if text not in model[ts]:
            raise RuntimeError(f"promtool recorded {text} at {ts}, the model did not")
        want, got = model[ts][text], float(mt.group(2))
        if want or got:
            diff = abs(got - want) / max(abs(want), abs(got))
            if diff > worst:
                worst, where = diff, f"{text} at {ts}: promtool {got!r}, model {want!r}"
        count += 1
    expected = sum(len(values) for values in model.values())
    print(
        f"recorded history check ({rules.name}): {count} samples from promtool, {expected} from "
        f"the model, largest relative difference {worst:.2e} ({where})"
    )
    return worst


# --- main ---------------------------------------------------------------------------------------


def parse_configs(text: str) -> list[tuple[int, int, int]]:
    """``8x3,32x3,128x30r2``: N x D days (rK: raw scrapes for the last K days only)."""
    out: list[tuple[int, int, int]] = []
    if text == "none":
        return out
    for part in text.split(","):
        mt = re.fullmatch(r"(\d+)x(\d+)(?:r(\d+))?", part.strip())
        if not mt:
            raise SystemExit(f"--configs: {part!r} is not NxD or NxDrK")
        n, d = int(mt.group(1)), int(mt.group(2))
        out.append((n, d, int(mt.group(3)) if mt.group(3) else d))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rules-old", type=Path, help="directory of *.rules.yml (default: --old-ref)")
    ap.add_argument("--rules-new", type=Path, help="directory of *.rules.yml (default: --new-ref)")
    ap.add_argument("--old-ref", default=OLD_REF, help="git ref whose alerts/ are the old rules")
    ap.add_argument("--new-ref", default="HEAD", help="git ref whose alerts/ are the new rules")
    ap.add_argument("--only", choices=["old", "new", "both"], default="both")
    ap.add_argument(
        "--configs",
        default="8x3,32x3,128x3,8x30,128x30r2",
        help="NxD[rK] list: N instances x D days, raw scrapes for the last K days",
    )
    ap.add_argument(
        "--evaluations",
        type=int,
        default=3,
        help="evaluations per group to take the median of (after the first)",
    )
    ap.add_argument("--max-wait", type=float, default=600, help="seconds per Prometheus run")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--slo", type=Path, help="SLO file (default: the shipped one)")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument(
        "--check-recorded",
        action="store_true",
        help="first compare the model-written records with promtool's",
    )
    ap.add_argument("--keep", action="store_true", help="keep the temp directory")
    args = ap.parse_args(argv)

    slo = load_slo(args.slo)
    types = [kt.name for kt in slo.key_types]
    objectives = {kt.name: kt.hit_rate_objective for kt in slo.key_types if kt.hit_rate_objective}
    objectives.setdefault("all", slo.hit_rate_objective)
    threshold = slo.latency.threshold_seconds
    window = int(slo.window.total_seconds())
    hit_record = c.record_hit_ratio(slo.window)
    latency_record = c.record_latency_good(slo.window)

    work = Path(tempfile.mkdtemp(prefix="rules_at_scale-", dir="/tmp"))
    exit_code = 0
    try:
        sets: list[RuleSet] = []
        if args.only in ("new", "both"):
            new_dir = args.rules_new or rules_from_ref(args.new_ref, work / "rules-new")
            sets.append(load_rules("new", new_dir))
        if args.only in ("old", "both"):
            old_dir = args.rules_old or rules_from_ref(args.old_ref, work / "rules-old")
            sets.append(load_rules("old", old_dir))
        for rs in sets:
            print(
                f"{rs.name} rules: {', '.join(p.name for p in rs.files)}; records read over a "
                f"range: {', '.join(rs.history) or 'none'}"
            )
        if args.check_recorded:
            for rs in sets:
                if rs.history:
                    worst = check_recorded(
                        rs, types, objectives, threshold, slo.latency.operation, work
                    )
                    if worst > 1e-5:  # raw values are written with 3 decimals
                        print(f"FAIL: recorded history differs from promtool's by {worst:.2e}")
                        exit_code = 1
        rows: list[tuple[int, int, int, int, int, list[RunResult]]] = []
        for n, days, raw_days in parse_configs(args.configs):
            started = time.monotonic()
            fl = build_fleet(
                n,
                days,
                raw_days,
                types,
                objectives,
                threshold,
                live_minutes=24 * 60,
                seed=args.seed + n * 1000 + days,
            )
            series = raw_series(fl, slo.latency.operation)
            history = [rs for rs in sets if rs.history]
            recorded = compute_recorded(fl, series, history[0] if history else None)
            blocks = work / f"blocks-{n}x{days}"
            om_bytes, _ = write_blocks(fl, series, recorded, blocks, work, args.workers)
            size = dir_size(blocks)
            print(
                f"\nN={n} D={days} raw days={raw_days}: {fl.n * len(series)} raw series, "
                f"{len(recorded)} recorded series backfilled; OpenMetrics {om_bytes / 1e6:.0f} MB, "
                f"blocks {size / 1e6:.0f} MB, built in {time.monotonic() - started:.0f} s"
            )
            results = []
            for rs in sets:
                if raw_days < days and rs.reads_raw_long:
                    results.append(
                        RunResult(
                            rs.name,
                            {},
                            [],
                            {},
                            note="n/a: reads raw counters "
                            f"over {days}d, raw data holds {raw_days}d",
                        )
                    )
                    print(f"  {rs.name}: {results[-1].note}")
                    continue
                res = run_prometheus(
                    fl,
                    series,
                    rs,
                    blocks,
                    work,
                    args.evaluations,
                    args.max_wait,
                    window,
                    hit_record,
                    latency_record,
                )
                results.append(res)
                print_run(res)
            shutil.rmtree(blocks, ignore_errors=True)
            for rs in sets:
                shutil.rmtree(work / f"prom-{rs.name}", ignore_errors=True)
            rows.append((n, days, raw_days, om_bytes, size, results))
        if rows:
            exit_code |= print_table(rows)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return exit_code


def print_run(res: RunResult) -> None:
    print(
        f"  {res.rules} rules, evaluation time per group (median of "
        f"{min((len(v) for v in res.groups.values()), default=0)}+ evaluations; load average "
        f"{res.load[0]:.1f} at start, {res.load[1]:.1f} at end on {os.cpu_count()} cores):"
    )
    for g in sorted(res.groups):
        times = res.groups[g]
        shown = ", ".join(f"{x:.3f}" for x in times)
        print(f"    {g:40s} {res.group_time(g):8.3f} s   [{shown}]")
        if res.group_time(g) >= 0.1:
            for what, t in res.slowest_rules.get(g, []):
                print(f"      {t:8.3f} s  {what}")
    for key, (got, exact) in sorted(res.sli.items()):
        print(
            f"    SLI {key:14s} rules {got * 100:9.4f} %  exact {exact * 100:9.4f} %  "
            f"diff {(got - exact) * 100:+.4f} pp"
        )
    for err in res.errors:
        print(f"    ERROR {err}")


def print_table(rows: list[tuple[int, int, int, int, int, list[RunResult]]]) -> int:
    """One line per configuration and rule set; 1 when the new rules miss a measured target."""
    head = f"{'N':>4} {'days':>4} {'raw':>3} {'OM MB':>6} {'TSDB MB':>7} | {'rules':5} "
    print(f"\n{head}{'slowest group':>28} {'s':>7}  {'max |SLI-exact| pp':>18}  load  verdict")
    failed = 0
    for n, days, raw_days, om, size, results in rows:
        lead = f"{n:4d} {days:4d} {raw_days:3d} {om / 1e6:6.0f} {size / 1e6:7.0f} | "
        for res in results:
            if res.note:
                print(f"{lead}{res.rules:5s} {res.note}")
                continue
            slow = max(res.groups, key=res.group_time, default="-")
            verdict = []
            if res.rules == "new":
                if not res.sli or res.max_diff_pp > SLI_TARGET_PP:
                    verdict.append(f"SLI misses {SLI_TARGET_PP} pp")
                if n >= 128 and days >= 30 and not res.max_time < EVAL_TARGET_S:
                    verdict.append(f"eval misses {EVAL_TARGET_S} s")
                if res.errors:
                    verdict.append(f"{len(res.errors)} rule errors")
                failed |= bool(verdict)
                shown = ", ".join(verdict) or "ok"
            else:
                shown = f"{len(res.errors)} rule errors" if res.errors else ""
            print(
                f"{lead}{res.rules:5s} {slow:>28} {res.max_time:7.3f}  "
                f"{res.max_diff_pp:18.4f}  {max(res.load):4.1f}  {shown}"
            )
    measured = any(
        n >= 128 and d >= 30 and any(r.rules == "new" and not r.note for r in rs)
        for n, d, _, _, _, rs in rows
    )
    if not measured:
        print("target 'every group < 0.5 s at N=128 x 30 days' not measured in this run")
    return 1 if failed else 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
