"""``cache-slo-exporter demo``: the whole product running on this machine in seconds.

Starts Redis (unless ``--redis-url``), PostgreSQL behind it (when installed), the
demo application under a synthetic multi-tenant workload, nginx in front of it
with the browsers' traffic through it (when nginx is installed), the exporter
and - when installed - Prometheus with the generated rules and Alertmanager, all
on loopback; prints every URL and a live status line; stops everything and
removes its temp dir on Ctrl-C, SIGTERM or after ``--duration``.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from types import FrameType

from prometheus_client.parser import text_string_to_metric_families

from exporter.demo.processes import DemoError
from exporter.demo.receiver import Notification
from exporter.demo.stack import Stack, StackOptions
from exporter.demo.workload import SCENARIOS
from exporter.metrics import CACHE_HITS, CACHE_LATENCY, CACHE_MISSES

STATUS_EVERY_SECONDS = 2.0
#: environment variable for --redis-url (keeps a password out of the process list)
REDIS_URL_ENV = "CACHE_SLO_DEMO_REDIS_URL"
#: signals that stop the demo cleanly (Ctrl-C, kill, the terminal closing)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scenario",
        choices=SCENARIOS,
        default="healthy",
        help="healthy: hit rates near the ADR's targets; partial: a quarter of sessions cold and "
        "3 in 100 Redis calls slowed (tickets fire); degraded: all sessions cold and every "
        "call slowed by a delaying proxy (pages fire)",
    )
    parser.add_argument(
        "--duration", type=float, default=None, help="stop after SECONDS (default: Ctrl-C)"
    )
    parser.add_argument(
        "--redis-url",
        default=None,
        help=f"use this Redis instead of starting one (or set ${REDIS_URL_ENV}, better when the "
        "URL holds a password: command lines are visible to every user)",
    )
    parser.add_argument("--slo", default=None, help="SLO file (default: the shipped one)")
    parser.add_argument("--rate", type=float, default=300.0, help="app requests per second")
    parser.add_argument(
        "--profile",
        "--rules",  # the first name it had; `generate` calls it --profile
        dest="profile",
        choices=("production", "fast"),
        default="production",
        help="rule profile, as generate --profile; fast divides every window and for: by 60 "
        "so alerts fire within a minute or two (production rules need 10+ minutes of data "
        "before they can fire)",
    )
    parser.add_argument(
        "--no-prometheus", action="store_true", help="do not start Prometheus/Alertmanager"
    )


@dataclass
class Snapshot:
    """Cumulative client counters read from the app's /metrics."""

    reads: float = 0.0
    hits: float = 0.0
    buckets: tuple[tuple[float, float], ...] = ()


def read_snapshot(url: str) -> Snapshot:
    with urllib.request.urlopen(url, timeout=2) as response:
        text = response.read().decode("utf-8")
    snap = Snapshot()
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == CACHE_HITS.name:
                snap.hits += sample.value
                snap.reads += sample.value
            elif sample.name == CACHE_MISSES.name:
                snap.reads += sample.value
            elif (
                sample.name == f"{CACHE_LATENCY.name}_bucket"
                and sample.labels.get("operation") == "get"
            ):
                le = float(sample.labels["le"])
                buckets[le] = buckets.get(le, 0.0) + sample.value
    snap.buckets = tuple(sorted(buckets.items()))
    return snap


def p99(before: Snapshot, after: Snapshot) -> float | None:
    """Upper bound of the bucket holding the 99th percentile of GETs between two snapshots."""
    old = dict(before.buckets)
    deltas = [(le, count - old.get(le, 0.0)) for le, count in after.buckets]
    if not deltas or deltas[-1][1] <= 0:
        return None
    total = deltas[-1][1]
    for le, count in deltas:
        if count >= 0.99 * total:
            return le
    return None


#: runnable processes per core above which the status line says the machine is busy: GET
#: latency is measured in the app, so a starved CPU shows as slow Redis calls
BUSY_LOAD_PER_CORE = 2.0


def busy_note(load: float, cores: int) -> str:
    """`` | machine busy: load 9.1 on 2 cores`` when GET latency measures the CPU queue."""
    if cores > 0 and load / cores > BUSY_LOAD_PER_CORE:
        return f" | machine busy: load {load:.1f} on {cores} cores"
    return ""


def status_line(
    before: Snapshot, after: Snapshot, elapsed: float, scenario: str, busy: str = ""
) -> str:
    reads = after.reads - before.reads
    hits = after.hits - before.hits
    rate = f"{after.reads:,.0f} reads ({reads / elapsed:,.0f}/s)" if elapsed > 0 else ""
    hit_rate = f"hit rate {hits / reads * 100:5.1f} %" if reads > 0 else "hit rate   -  "
    bound = p99(before, after)
    p99_text = "GET p99    -   " if bound is None else f"GET p99 <= {bound * 1000:g} ms"
    return f"[{scenario}] {rate} | {hit_rate} | {p99_text}{busy}"


def run(args: argparse.Namespace) -> int:
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # SIGHUP: the terminal window closed; the children run in their own sessions, so the
    # terminal's hangup reaches the demo only, and the demo must stop them
    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    tty = sys.stdout.isatty()

    def on_alert(note: Notification) -> None:
        labels = ", ".join(f"{k}={v}" for k, v in sorted(note.labels.items()) if k != "alertname")
        name = note.labels.get("alertname", "?")
        print(f"\n{note.receiver}: {name} {note.status} ({labels})", flush=True)

    options = StackOptions(
        scenario=args.scenario,
        redis_url=args.redis_url or os.environ.get(REDIS_URL_ENV) or None,
        slo=args.slo,
        rate=args.rate,
        profile=args.profile,
        with_prometheus=False if args.no_prometheus else None,
        on_alert=on_alert,
    )
    started = time.monotonic()
    stack: Stack | None = None
    try:
        stack = Stack(options)
        print(f"starting the demo ({args.scenario}) in {stack.tmp} ...", flush=True)
        stack.start()
        print(f"up in {time.monotonic() - started:.1f}s (run {stack.run_id}):")
        for name, url in sorted(stack.links.items(), key=lambda kv: _link_rank(kv[0])):
            print(f"  {name:<20} {url}")
        if "prometheus" not in stack.urls and not args.no_prometheus:
            print("  (prometheus / prometheus-alertmanager not installed: run `make demo`)")
        for note in stack.notes:
            print(f"  ({note})")
        print("Ctrl-C stops everything.", flush=True)
        _loop(stack, stop, args.duration, tty)
    except DemoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # stdout gone (`demo | head`, a closed terminal): stop quietly
        if exc.errno not in (errno.EPIPE, errno.EIO):
            raise
        return 1
    finally:
        if stack is not None:
            _say("\nstopping ...")
            stack.stop()
            _say("stopped; nothing left running.")
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


#: the order the demo lists its parts in: the data path first, then where alerts show
LINK_ORDER = (
    "redis",
    "postgres",
    "app metrics",
    "edge (nginx)",
    "exporter metrics",
    "SLO status page",
    "prometheus alerts",
    "prometheus graph",
    "alertmanager alerts",
    "alertmanager CLI",
)


def _link_rank(name: str) -> int:
    return LINK_ORDER.index(name) if name in LINK_ORDER else len(LINK_ORDER)


def _say(text: str) -> None:
    """Print, but never let a closed stdout stop the cleanup that follows."""
    with contextlib.suppress(OSError):
        print(text, flush=True)


def _loop(stack: Stack, stop: threading.Event, duration: float | None, tty: bool) -> None:
    url = stack.urls["app metrics"]
    deadline = None if duration is None else time.monotonic() + duration
    before, at = read_snapshot(url), time.monotonic()
    while not stop.is_set():
        wait = STATUS_EVERY_SECONDS
        if deadline is not None:
            wait = min(wait, deadline - time.monotonic())
            if wait <= 0:
                break
        if stop.wait(wait):
            break
        dead = stack.dead_children()
        if dead:
            raise DemoError(
                f"{dead[0].name} stopped unexpectedly; its last output:\n{dead[0].tail()}"
            )
        try:
            after, now = read_snapshot(url), time.monotonic()
        except OSError:
            continue
        busy = busy_note(os.getloadavg()[0], os.cpu_count() or 0)
        line = status_line(before, after, now - at, stack.scenario, busy)
        print(f"\r{line}   " if tty else line, end="" if tty else "\n", flush=True)
        before, at = after, now
