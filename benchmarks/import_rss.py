"""Where the exporter's RSS goes: the floor each import sets, against the Go exporter's RSS.

Issue #12 asks for an RSS at most twice the Go ``redis_exporter``'s.  This
prints, each in a fresh interpreter, the RSS after importing a growing set of
modules (the interpreter alone, then the libraries ``serve`` needs, then
``exporter.server``), the RSS of a running ``serve`` after 100 scrapes, and
the Go exporter's RSS against the same Redis after 100 scrapes, with the ratio.
It shows which parts a smaller process would have to drop::

    .venv/bin/python benchmarks/import_rss.py     # ~15 s; needs redis-server
                                                  # and prometheus-redis-exporter
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from exporter_vs_redis_exporter import process, rss_mb  # noqa: E402

from tests.support.processes import RedisServer, free_port, require_binary  # noqa: E402

# Each step imports everything of the steps before it too.
STEPS: list[tuple[str, str]] = [
    ("interpreter alone", ""),
    ("+ prometheus_client (imports ssl, wsgiref, urllib)", "prometheus_client"),
    ("+ redis-py (imports asyncio, redis.asyncio, commands)", "redis"),
    ("+ PyYAML", "yaml"),
    ("+ uvicorn (imports click, h11)", "uvicorn"),
    ("+ Starlette (anyio)", "starlette.applications"),
    ("+ exporter.server (our modules)", "exporter.server"),
]

PROBE = (
    "import re, sys\n"
    "for name in sys.argv[1:]: __import__(name)\n"
    "status = open('/proc/self/status').read()\n"
    "print(int(re.search(r'VmRSS:\\s+(\\d+)', status).group(1)) / 1024)\n"
)


def import_floor(modules: list[str]) -> float:
    """RSS in MiB of a fresh interpreter after importing ``modules``."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *modules],
        check=True, capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    return float(out.stdout)


def running(args: list[str], port: int, log: Path, scrapes: int = 100) -> float:
    """RSS in MiB of an exporter process after ``scrapes`` scrapes of /metrics."""
    with process(args, port, log) as proc, httpx.Client(timeout=30) as http:
        for _ in range(scrapes):
            http.get(f"http://127.0.0.1:{port}/metrics").raise_for_status()
        time.sleep(1)
        return rss_mb(proc.pid)["rss_mb"]


def main() -> int:
    go_binary = require_binary("prometheus-redis-exporter")
    modules: list[str] = []
    print(f"{'imports (fresh interpreter each)':58} RSS MiB   step")
    previous = 0.0
    for label, module in STEPS:
        if module:
            modules.append(module)
        rss = import_floor(modules)
        print(f"{label:58} {rss:7.1f}  {rss - previous:+6.1f}")
        previous = rss
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp) / "redis").start()
        try:
            ours_port, go_port = free_port(), free_port()
            ours = running(
                [str(Path(sys.executable).parent / "cache-slo-exporter"), "serve",
                 "--redis-url", server.url, "--listen", f"127.0.0.1:{ours_port}"],
                ours_port, Path(tmp) / "ours.log",
            )  # fmt: skip
            go = running(
                [go_binary, "-redis.addr", f"redis://127.0.0.1:{server.port}",
                 "-web.listen-address", f"127.0.0.1:{go_port}"],
                go_port, Path(tmp) / "go.log",
            )  # fmt: skip
        finally:
            server.stop()
    print(f"{'serve, after 100 scrapes':58} {ours:7.1f}")
    print(f"{'Go redis_exporter, after 100 scrapes':58} {go:7.1f}")
    print(f"ours / Go: {ours / go:.2f}x (target <= 2x, i.e. <= {2 * go:.1f} MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
