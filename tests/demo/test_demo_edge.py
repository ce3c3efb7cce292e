"""The demo's edge: the browsers' mix, the layer objectives the demo adds, and a demo
that runs without nginx when it is not installed."""

from __future__ import annotations

import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
import yaml

from exporter.demo import stack as stack_module
from exporter.demo.edge import ASSETS, MIX, PAGE_ETAG, EdgeTraffic, demo_layers
from exporter.demo.processes import DemoError
from exporter.demo.stack import Stack, StackOptions
from exporter.paths import PathClasses
from exporter.slo import default_slo_path
from tests.exporter.conftest import sample
from tests.support.processes import require_binary


def test_the_browsers_mix_gives_the_shares_the_objectives_are_set_for() -> None:
    """Over many requests: API reads by new callers at their share (the edge's API
    misses), assets, and page revalidations holding the current ETag 8 times in 9."""
    traffic = EdgeTraffic(1, rate=1, seed=3)
    kinds: Counter[str] = Counter()
    for _ in range(20_000):
        path, headers = traffic.next_request()
        kind = PathClasses().classify(path)
        if kind == "api":
            kind += "-new" if headers["Authorization"].startswith("Bearer new-") else ""
            assert headers["Accept-Language"] == "en"
        elif kind == "html":
            kind += {PAGE_ETAG: "-current", None: "-plain"}.get(
                headers.get("If-None-Match"), "-stale"
            )
        else:
            assert kind == "asset" and path.removeprefix("/static/") in ASSETS
        kinds[kind] += 1
    api = kinds["api"] + kinds["api-new"]
    assert abs(api / 20_000 - MIX.api) < 0.02
    assert abs(kinds["api-new"] / api - MIX.new_caller_share) < 0.01
    assert abs(kinds["asset"] / 20_000 - MIX.asset) < 0.02
    revalidated = kinds["html-current"] + kinds["html-stale"]
    assert abs(kinds["html-current"] / revalidated - 8 / 9) < 0.002  # a fixed cycle
    # the objectives the demo adds leave room under those shares
    layers = demo_layers(cdn=True, postgres=False)
    assert layers["cdn"]["api"] < 1 - MIX.new_caller_share - 0.05
    assert layers["browser"]["html"] < 8 / 9 - 0.1
    assert "postgres" not in layers


def test_the_demo_adds_its_layer_objectives_only_to_a_file_without_any(tmp_path: Path) -> None:
    with_layers = tmp_path / "own.yaml"
    raw = yaml.safe_load(default_slo_path().read_text())
    raw["layers"] = {"browser": {"all": 0.5}}
    with_layers.write_text(yaml.safe_dump(raw))
    own = Stack(StackOptions(slo=str(with_layers), edge=False))
    shipped = Stack(StackOptions(edge=False, postgres_dsn="postgresql://x@127.0.0.1/x"))
    try:
        assert own.slo.layers == {"browser": {"all": 0.5}} and own.slo_path == with_layers
        # the shipped file, plus the layers this demo runs: no edge here, a PostgreSQL
        assert shipped.slo.layers == demo_layers(cdn=False, postgres=True)
        assert shipped.slo_path is not None and shipped.slo_path.parent == shipped.tmp
        assert [kt.name for kt in shipped.slo.key_types] == [
            kt["name"] for kt in yaml.safe_load(default_slo_path().read_text())["key_types"]
        ]
    finally:
        own.stop()
        shipped.stop()


def test_without_postgresql_the_demo_says_so_in_one_line_and_adds_no_postgres_objective(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stack_module, "find_binaries", lambda: "PostgreSQL not installed")
    live = Stack(StackOptions(edge=False))
    try:
        assert live.postgres_binaries is None and live.postgres_dsn == ""
        assert [n for n in live.notes if "PostgreSQL" in n] == [
            "PostgreSQL not installed: running without the PostgreSQL layer "
            "(`make demo` installs postgresql)"
        ]
        assert "postgres" not in live.slo.layers
    finally:
        live.stop()
    with pytest.raises(DemoError, match="PostgreSQL not installed"):
        Stack(StackOptions(edge=False, postgres=True))


def test_without_nginx_the_demo_says_so_in_one_line_and_runs_without_the_edge(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """nginx missing: one note, no edge link, no CDN objective, and the browsers talk
    to the app itself, whose middleware still feeds the API objective and browser layer."""
    require_binary("redis-server")
    real_which = stack_module.which

    def which(name: str, *extra: str) -> str | None:
        return None if name == "nginx" else real_which(name, *extra)

    monkeypatch.setattr(stack_module, "which", which)
    live = Stack(StackOptions(rate=20, http_rate=40, with_prometheus=False, postgres=False))
    try:
        assert live.notes == [
            "nginx not installed: running without the CDN edge (browsers talk to the app; "
            "`make demo` installs nginx-light)"
        ]
        live.start()
        assert not live.edge and "edge (nginx)" not in live.links
        assert "cdn" not in live.slo.layers and "browser" in live.slo.layers
        deadline = time.monotonic() + 20
        text = ""
        while time.monotonic() < deadline:
            with urllib.request.urlopen(live.urls["app metrics"], timeout=5) as response:
                text = response.read().decode()
            browser = sample(text, "cache_hits_total", layer="browser", type="html") or 0
            route = "/api/feature-flags/{flag_id}"
            api = sample(text, "api_request_duration_seconds_count", cached="true",
                         method="GET", route=route, status_class="2xx")  # fmt: skip
            if browser > 0 and (api or 0) > 0:
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"no browser or API series from the app:\n{text[-2000:]}")
        assert live.traffic is not None and live.traffic.sent > 0
    finally:
        live.stop()
