"""The edge layers for real: nginx (proxy_cache) in front of a FastAPI app behind
the middleware (uvicorn), and ``serve --cdn-log nginx:...`` reading nginx's log.

The CDN counts are checked against nginx's own access log and the responses'
``X-Cache-Status``; the browser-layer counts against the conditional requests
sent and the 304s received.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from exporter.collectors.cdn_logs import NGINX_RESULTS
from exporter.paths import PathClasses
from tests.exporter.conftest import ROOT, Exporter, sample
from tests.support.nginx import Nginx
from tests.support.processes import cleanup_env, free_port, wait_for_port

pytestmark = pytest.mark.slow


@pytest.fixture
def app_port(tmp_path: Path) -> Iterator[int]:
    """The demo app under uvicorn, a real process on a free port."""
    port = free_port()
    log = tmp_path / "app.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "tests.support.edge_app:app",
             "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=cleanup_env(),
        )  # fmt: skip
    try:
        wait_for_port(port, timeout=30, proc=proc)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def nginx(tmp_path: Path, app_port: int) -> Iterator[Nginx]:
    server = Nginx(tmp_path / "nginx", app_port).start()
    try:
        yield server
    finally:
        server.stop()


def _log_tally(log: Path, classes: PathClasses) -> Counter[tuple[str, str]]:
    """nginx's own log, read here independently of the collector: (hit|miss, type)."""
    found: Counter[tuple[str, str]] = Counter()
    for line in log.read_text().splitlines():
        fields = dict(pair.split("=", 1) for pair in line.split("\t"))
        outcome = NGINX_RESULTS[fields["cache"].encode()]
        if outcome in ("hit", "miss"):
            found[(outcome, classes.classify(fields["uri"]))] += 1
    return found


def _header_tally(responses: list[tuple[str, httpx.Response]]) -> Counter[tuple[str, str]]:
    """What the clients were told (X-Cache-Status), per path class."""
    classes = PathClasses()
    found: Counter[tuple[str, str]] = Counter()
    for path, response in responses:
        status = response.headers.get("x-cache-status", "-").encode()
        outcome = NGINX_RESULTS[status]
        if outcome in ("hit", "miss"):
            found[(outcome, classes.classify(path))] += 1
    return found


def _wait_for_lines(exporter: Exporter, count: int, deadline: float = 15.0) -> str:
    end = time.monotonic() + deadline
    while True:
        text = exporter.metrics()
        read = sum(
            sample(text, "cache_exporter_cdn_log_lines_total", format="nginx", outcome=o) or 0
            for o in ("hit", "miss", "ignored", "malformed", "oversized")
        )
        if read >= count or time.monotonic() > end:
            return text
        time.sleep(0.1)


def _send(
    nginx: Nginx, paths: list[tuple[str, dict[str, str]]]
) -> list[tuple[str, httpx.Response]]:
    sent = []
    with httpx.Client(base_url=nginx.url, timeout=10) as client:
        for path, headers in paths:
            sent.append((path, client.get(path, headers=headers)))
    return sent


def test_cdn_counts_match_nginx_log_and_responses_and_survive_a_restart(
    nginx: Nginx,
    redis_url: str,
    tmp_path: Path,
    exporter_factory: Callable[..., Exporter],
) -> None:
    state = str(tmp_path / "cdn.state")
    args = ("--redis-url", redis_url, "--cdn-log", f"nginx:{nginx.log}",
            "--cdn-state-file", state, "--cdn-poll-interval", "0.2")  # fmt: skip
    exporter = exporter_factory(*args)
    traffic: list[tuple[str, dict[str, str]]] = []
    for item in range(1, 5):
        traffic += [(f"/api/items/{item}", {})] * 3  # MISS, then HIT from nginx's cache
    traffic += [("/static/app.3f2a9c.js", {})] * 3
    traffic += [("/index.html", {})] * 2  # no-store: never cached, MISS each time
    traffic += [("/api/items/2", {"If-None-Match": '"item-2-v1"'})]  # nginx answers 304
    traffic += [("/live/items/7", {})] * 2  # no proxy_cache there: "-", not counted
    traffic += [("/nothing/here", {})]
    sent = _send(nginx, traffic)
    assert sent[-4][1].status_code == 304
    told = _header_tally(sent)
    assert told[("hit", "api")] == 9  # 8 repeats + the 304 from cache
    assert told[("miss", "api")] == 4

    text = _wait_for_lines(exporter, len(traffic))
    logged = _log_tally(nginx.log, PathClasses())
    assert logged == told
    for (outcome, type_), count in logged.items():
        name = "cache_hits_total" if outcome == "hit" else "cache_misses_total"
        assert sample(text, name, layer="cdn", type=type_) == count, (name, type_)
    assert (
        sample(text, "cache_exporter_cdn_log_lines_total", format="nginx", outcome="ignored") == 2
    )
    assert sample(text, "cache_exporter_collector_up", collector="cdn_logs",
                  instance=redis_url.removeprefix("redis://").removesuffix("/0")) == 1  # fmt: skip

    # a restart reads on from the saved position: only the new requests count
    exporter.proc.terminate()
    exporter.proc.wait(10)
    again = exporter_factory(*args)
    _send(nginx, [("/api/items/1", {}), ("/api/items/9", {})])
    text = _wait_for_lines(again, 2)
    assert sample(text, "cache_hits_total", layer="cdn", type="api") == 1
    assert sample(text, "cache_misses_total", layer="cdn", type="api") == 1

    # logrotate's way: rename, then SIGUSR1 makes nginx reopen its log at the path
    _send(nginx, [("/api/items/1", {})])  # written to the file about to be renamed
    nginx.log.rename(nginx.log.with_name("cache.log.1"))
    _send(nginx, [("/api/items/9", {})])  # nginx still writes to the renamed file
    assert nginx.proc is not None
    nginx.proc.send_signal(signal.SIGUSR1)
    end = time.monotonic() + 10
    while not nginx.log.exists() and time.monotonic() < end:
        time.sleep(0.05)
    _send(nginx, [("/api/items/1", {}), ("/api/items/10", {})])
    text = _wait_for_lines(again, 6)
    assert sample(text, "cache_hits_total", layer="cdn", type="api") == 4
    assert sample(text, "cache_misses_total", layer="cdn", type="api") == 2


def test_browser_layer_counts_the_conditional_requests_the_app_answered(
    nginx: Nginx, app_port: int
) -> None:
    etag = {"If-None-Match": '"item-1-v1"'}
    sent = _send(
        nginx,
        [("/live/items/1", {})]  # not conditional: no browser-layer count
        + [("/live/items/1", etag)] * 3  # the browser's copy is current: 304
        + [("/live/items/1", {"If-None-Match": '"item-1-v0"'})] * 2  # stale: full 200
        + [("/live/items/2", {})],
    )
    assert [r.status_code for _, r in sent] == [200, 304, 304, 304, 200, 200, 200]
    assert all(r.content == b"" for _, r in sent[1:4])
    direct = f"http://127.0.0.1:{app_port}"
    with httpx.Client(base_url=direct, timeout=10) as client:
        asset = client.get("/static/app.3f2a9c.js", headers={"If-None-Match": '"3f2a9c"'})
        api = client.get("/api/items/3", headers={"If-None-Match": 'W/"item-3-v1"'})
        page = client.get("/index.html")
        bad = client.get("/api/bad")
        text = client.get("/metrics").text
    assert (asset.status_code, api.status_code) == (304, 304)

    assert sample(text, "cache_hits_total", layer="browser", type="other") == 3
    assert sample(text, "cache_misses_total", layer="browser", type="other") == 2
    assert sample(text, "cache_hits_total", layer="browser", type="asset") == 1
    assert sample(text, "cache_hits_total", layer="browser", type="api") == 1

    # the ADR's policy, applied where the app set none
    assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert api.headers["cache-control"] == "public, max-age=3600, s-maxage=3600"
    assert api.headers["vary"] == "Authorization, Accept-Language"
    assert page.headers["cache-control"] == "no-cache, no-store, must-revalidate"
    # and checked where the app set its own ("max-age=60": not public, not an hour)
    assert bad.headers["cache-control"] == "max-age=60"
    for rule in ("public", "max_age", "s_maxage"):
        assert sample(text, "cache_policy_violations_total", type="api", rule=rule) == 1
    assert sample(text, "cache_policy_violations_total", type="api", rule="vary") is None

    # latency by route template and cache mark, never the raw path
    count = "api_request_duration_seconds_count"
    live = {"route": "/live/items/{item_id}", "method": "GET"}
    assert sample(text, count, status_class="2xx", cached="false", **live) == 3
    assert sample(text, count, status_class="3xx", cached="false", **live) == 3
    assert sample(text, count, status_class="2xx", cached="true", **live) == 1  # sync endpoint
    assert "/live/items/1" not in text and "/api/items/3" not in text
    bucket = "api_request_duration_seconds_bucket"
    assert sample(text, bucket, le="0.2", status_class="2xx", cached="true", **live) == 1
