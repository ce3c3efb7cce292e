"""The demo's edge: nginx with ``proxy_cache`` in front of the app, and the browsers.

:func:`nginx_config` is a self-hosted CDN as ADR-004's layer 2 runs one: the API
(``/api/``) and the hashed assets (``/static/``) are cached by nginx as the
app's Cache-Control allows (an hour for the API, per ``Vary: Authorization,
Accept-Language``; a year for assets), the page is not (``no-store``), so a
browser's conditional request for it reaches the app, whose middleware answers
304.  nginx writes the CDN reader's ``cache_slo`` log, which ``serve --cdn-log
nginx:FILE`` counts.  Requests the demo sends to warm the cache carry
:data:`WARMUP_HEADER` and are not logged, as a CDN's pre-warming is not traffic.

:class:`EdgeTraffic` plays the browsers: a thread in the demo process sending a
steady mix through nginx (or straight to the app when nginx is not installed):

* API reads of the feature flags by a few regular callers (cached at the edge
  after the warm-up), and a share by never-seen callers, whose ``Authorization``
  makes every one an edge miss that the app answers from Redis;
* the page's assets (edge hits once warm);
* the page itself, revalidated by browsers that hold it: most with its current
  ETag (304, a browser-layer hit), some with an old one (200, a miss).

Numbers (CDN hit rate per class, browser revalidation hit rate) are set by the
shares in :data:`MIX`; :func:`demo_layers` holds the objectives the demo adds
for them, with their margins.
"""

from __future__ import annotations

import http.client
import os
import random
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

#: the hashed assets the page loads: name -> (content type, body)
ASSETS: dict[str, tuple[str, bytes]] = {
    "app.3f2a9c.js": ("text/javascript", b"console.log('cache-slo demo');\n"),
    "vendor.81b0d4.js": ("text/javascript", b"/* vendor */\n"),
    "app.9b1d7e.css": ("text/css", b"body { font-family: sans-serif; }\n"),
    "logo.c41f02.svg": ("image/svg+xml", b'<svg xmlns="http://www.w3.org/2000/svg"/>\n'),
}
#: the page's current version: a browser holding it revalidates with this ETag
PAGE_ETAG = '"page-v1"'
PAGE = (
    "<!doctype html><title>cache-slo demo</title>"
    + "".join(f'<script src="/static/{n}"></script>' for n in ASSETS if n.endswith(".js"))
    + "<p>The demo application.</p>\n"
)
#: the header of the warm-up requests; nginx does not log them
WARMUP_HEADER = "X-Demo-Warmup"
#: the reader's documented log_format (exporter/collectors/cdn_logs.py)
LOG_FORMAT = (
    "'time=$time_iso8601\\tmethod=$request_method\\turi=$uri\\t"
    "status=$status\\tcache=$upstream_cache_status'"
)

_CONFIG = """\
{user}
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 256; }}
http {{
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    proxy_cache_path {prefix}/cache levels=1:2 keys_zone=edge:4m max_size=64m inactive=1h
                     use_temp_path=off;
    log_format cache_slo {log_format};
    map $http_{warmup_var} $cache_slo_logged {{ "" 1; default 0; }}
    access_log {log} cache_slo if=$cache_slo_logged;
    upstream app {{ server 127.0.0.1:{upstream}; keepalive 8; }}
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    server {{
        listen 127.0.0.1:{port};
        # the API and the hashed assets: cached as their Cache-Control allows
        location /api/ {{
            proxy_pass http://app;
            proxy_cache edge;
            add_header X-Cache-Status $upstream_cache_status always;
        }}
        location /static/ {{
            proxy_pass http://app;
            proxy_cache edge;
            add_header X-Cache-Status $upstream_cache_status always;
        }}
        # pages (no-store) and the rest: to the app, conditional headers included
        location / {{
            proxy_pass http://app;
        }}
    }}
}}
"""


def nginx_config(prefix: Path, port: int, upstream: int, log: Path) -> str:
    """The edge's nginx.conf: everything under ``prefix``, listening on ``port``."""
    return _CONFIG.format(
        # as root, nginx's workers would run as nobody, who cannot enter a 0700 temp dir
        user="user root;" if os.geteuid() == 0 else "",
        prefix=prefix,
        port=port,
        upstream=upstream,
        log=log,
        log_format=LOG_FORMAT,
        warmup_var=WARMUP_HEADER.lower().replace("-", "_"),
    )


@dataclass(frozen=True)
class Mix:
    """Shares of the browsers' requests; see the module docstring."""

    api: float = 0.6
    asset: float = 0.25  # the rest: the page
    #: distinct feature flags the API serves (the workload's feature-flag population)
    flags: int = 40
    #: regular callers (distinct Authorization values the edge caches per flag)
    callers: int = 4
    #: API reads by never-seen callers: edge misses the app answers (from Redis)
    new_caller_share: float = 0.1
    #: page revalidations with an old ETag (a 200 in full: a browser-layer miss) ...
    stale_page_share: float = 0.1
    #: ... and page loads without a cached copy (no conditional request: not counted)
    fresh_page_share: float = 0.1


MIX = Mix()


def demo_layers(*, cdn: bool, postgres: bool) -> dict[str, dict[str, float]]:
    """The layer objectives the demo adds to an SLO file that has none.

    With :data:`MIX` the edge's API hit rate settles at about 90 % (the new callers'
    10 % are misses; the regular callers' entries, warmed at start, expire after an
    hour and are refetched once each), the assets at 100 %, the browsers' page
    revalidations at 1 - 0.1 / 0.9 = 89 %; the objectives leave room for chance."""
    layers: dict[str, dict[str, float]] = {"browser": {"html": 0.75}}
    if cdn:
        layers["cdn"] = {"api": 0.8, "asset": 0.95}
    if postgres:
        layers["postgres"] = {"buffer": 0.9}
    return layers


class EdgeTraffic:
    """Browsers, as one thread: :meth:`warm` once, then :meth:`start`; :meth:`stop`."""

    def __init__(
        self,
        port: int,
        rate: float,
        *,
        mix: Mix = MIX,
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.port = port
        self.rate = rate
        self.mix = mix
        self.rng = random.Random(seed)
        self.clock = clock
        self.sent = 0
        self.failed = 0
        self._pages = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: http.client.HTTPConnection | None = None

    # --- requests ------------------------------------------------------------------------

    def _get(self, path: str, headers: dict[str, str]) -> int:
        """One GET on the kept-alive connection (reopened once if the server closed it)."""
        for attempt in range(2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                self._conn.request("GET", path, headers=headers)
                response = self._conn.getresponse()
                response.read()
                return response.status
            except (OSError, http.client.HTTPException):
                self._conn.close()
                self._conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    @staticmethod
    def _caller(name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {name}", "Accept-Language": "en"}

    def _api(self, flag: int, caller: str) -> tuple[str, dict[str, str]]:
        return f"/api/feature-flags/{flag}", self._caller(caller)

    def next_request(self) -> tuple[str, dict[str, str]]:
        """The next browser request: (path, headers)."""
        mix, draw = self.mix, self.rng.random()
        if draw < mix.api:
            flag = self.rng.randrange(mix.flags)
            if self.rng.random() < mix.new_caller_share:
                return self._api(flag, f"new-{secrets.token_hex(6)}")
            return self._api(flag, f"caller-{self.rng.randrange(mix.callers)}")
        if draw < mix.api + mix.asset:
            return f"/static/{self.rng.choice(sorted(ASSETS))}", {}
        # pages in a fixed cycle, so the browser layer's ratio does not wander
        self._pages += 1
        cycle = self._pages % 20
        if cycle < round(20 * mix.stale_page_share):
            return "/", {"If-None-Match": '"page-v0"'}
        if cycle < round(20 * (mix.stale_page_share + mix.fresh_page_share)):
            return "/", {}
        return "/", {"If-None-Match": PAGE_ETAG}

    def warm(self) -> None:
        """Put every regular caller's flags and every asset in the edge's cache, unlogged,
        so the edge starts near its steady hit rates (as the app warms Redis)."""
        warm = {WARMUP_HEADER: "1"}
        for caller in range(self.mix.callers):
            for flag in range(self.mix.flags):
                path, headers = self._api(flag, f"caller-{caller}")
                self._get(path, {**headers, **warm})
        for name in sorted(ASSETS):
            self._get(f"/static/{name}", warm)

    # --- the thread ----------------------------------------------------------------------

    def start(self) -> EdgeTraffic:
        self._thread = threading.Thread(target=self._run, name="demo-browsers", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(15)
            self._thread = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _run(self) -> None:
        interval = 1.0 / self.rate if self.rate > 0 else 1.0
        next_at = self.clock()
        while not self._stop.is_set():
            path, headers = self.next_request()
            try:
                self._get(path, headers)
                self.sent += 1
            except (OSError, http.client.HTTPException):
                self.failed += 1  # the app or nginx restarting: the demo notices them
            next_at += interval
            pause = next_at - self.clock()
            if pause > 0:
                self._stop.wait(pause)
            elif pause < -1.0:  # fell behind: do not burst to catch up
                next_at = self.clock()
