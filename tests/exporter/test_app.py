"""The app in-process (``create_app`` + TestClient) against real redis-servers."""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from exporter import config
from exporter.config import Settings, instance_of, split_credentials
from exporter.scrape_targets import allowed, parse_target
from exporter.server import create_app
from tests.exporter.conftest import promtool_check, sample
from tests.support.processes import RedisServer

OPENMETRICS = "application/openmetrics-text; version=1.0.0"
SECRET = "redis-test-secret-9813"


def client_for(settings: Settings, background: bool = False) -> TestClient:
    return TestClient(create_app(settings, background=background))


@pytest.fixture
def app_client(redis_url: str) -> Iterator[TestClient]:
    """The app, with /scrape allowed to reach every Redis the tests start on loopback."""
    settings = Settings(redis_url=redis_url, scrape_timeout=2.0, scrape_allow=("127.0.0.1",))
    with client_for(settings) as client:
        yield client


def test_metrics_equal_what_info_says(redis_factory: Callable[..., RedisServer]) -> None:
    server = redis_factory("--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru")
    r = redis.Redis.from_url(server.url)
    r.set("session:a", "1")
    r.get("session:a")
    r.get("session:a")
    r.get("session:missing")
    with client_for(Settings(redis_url=server.url)) as client:
        text = client.get("/metrics").text
    stats, cmds = r.info("stats"), r.info("commandstats")
    inst = {"instance": instance_of(server.url)}
    assert sample(text, "redis_up", **inst) == 1.0
    assert sample(text, "redis_keyspace_hits_total", **inst) == stats["keyspace_hits"] == 2
    assert sample(text, "redis_keyspace_misses_total", **inst) == stats["keyspace_misses"] == 1
    assert sample(text, "redis_expired_keys_total", **inst) == stats["expired_keys"]
    assert sample(text, "redis_evicted_keys_total", **inst) == stats["evicted_keys"]
    assert sample(text, "redis_memory_max_bytes", **inst) == 64 * 1024 * 1024
    assert (sample(text, "redis_memory_used_bytes", **inst) or 0) > 0
    assert sample(text, "redis_commands_total", cmd="get", **inst) == cmds["cmdstat_get"]["calls"]
    duration = sample(text, "redis_commands_duration_seconds_total", cmd="get", **inst)
    assert duration == pytest.approx(cmds["cmdstat_get"]["usec"] / 1e6)
    assert sample(text, "redis_db_keys", db="db0", **inst) == 1.0
    p99 = sample(text, "redis_latency_percentiles_seconds", cmd="get", quantile="0.99", **inst)
    assert p99 is not None and 0 < p99 < 1
    assert sample(text, "cache_exporter_last_scrape_error", error="", **inst) == 0.0
    assert sample(text, "cache_exporter_scrape_errors_total", **inst) == 0.0
    r.close()


def test_metrics_output_passes_promtool_check_metrics(app_client: TestClient) -> None:
    text = app_client.get("/metrics").text
    assert "redis_up" in text
    result = promtool_check(text)
    assert result.returncode == 0, result.stdout + result.stderr


def test_openmetrics_is_served_when_the_scraper_asks_for_it(app_client: TestClient) -> None:
    plain = app_client.get("/metrics")
    assert plain.headers["content-type"].startswith("text/plain; version=0.0.4")
    om = app_client.get("/metrics", headers={"Accept": OPENMETRICS})
    assert om.headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
    assert om.text.endswith("# EOF\n")
    assert "# TYPE redis_keyspace_hits counter" in om.text
    assert "# TYPE redis_keyspace_hits counter" not in plain.text


def test_root_without_prometheus_says_what_is_served_and_how_to_get_the_status_page(
    app_client: TestClient,
) -> None:
    response = app_client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert 'href="/metrics"' in response.text
    assert "--prometheus-url" in response.text


def test_healthz_is_alive_and_readyz_follows_redis(
    redis_factory: Callable[..., RedisServer],
) -> None:
    server = redis_factory()
    with client_for(Settings(redis_url=server.url, scrape_timeout=2.0)) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        server.kill()
        down = client.get("/readyz")
        assert down.status_code == 503
        assert down.json()["error"] == "connection"
        assert client.get("/healthz").status_code == 200
        server.start()
        assert client.get("/readyz").status_code == 200


def test_scrape_reads_another_redis_with_a_fresh_registry(
    app_client: TestClient, redis_factory: Callable[..., RedisServer]
) -> None:
    other = redis_factory()
    r = redis.Redis.from_url(other.url)
    r.mset({f"user:{i}": i for i in range(7)})
    r.close()
    inst = instance_of(other.url)
    for _ in range(2):
        text = app_client.get("/scrape", params={"target": other.url}).text
        assert sample(text, "redis_up", instance=inst) == 1.0
        assert sample(text, "redis_db_keys", db="db0", instance=inst) == 7.0
        assert sample(text, "cache_exporter_scrape_errors_total", instance=inst) == 0.0
    # the exporter's own Redis is not in a /scrape answer, nor the target in /metrics
    assert "process_cpu_seconds_total" not in text
    own = app_client.get("/metrics").text
    assert f'instance="{inst}"' not in own


def test_scrape_of_an_unreachable_target_reports_redis_up_0_quickly(
    app_client: TestClient, redis_factory: Callable[..., RedisServer]
) -> None:
    dead = redis_factory()
    dead.kill()
    started = time.monotonic()
    response = app_client.get("/scrape", params={"target": dead.url})
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    inst = instance_of(dead.url)
    assert sample(response.text, "redis_up", instance=inst) == 0.0
    err = sample(
        response.text, "cache_exporter_last_scrape_error", error="connection", instance=inst
    )
    assert err == 1.0
    assert elapsed < 2.0  # the configured scrape deadline


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("http://example:80", "query parameter 'target': expected a URL whose scheme"),
        ("redis://:secretpw@h:notaport/0", "query parameter 'target': expected a redis://"),
        ("redis:///0", "query parameter 'target': expected a host"),
        ("redis+sentinel://:secretpw@h:26379/m", "(Sentinel: use --redis-url)"),
    ],
)
def test_scrape_refuses_bad_targets_naming_the_parameter(
    app_client: TestClient, target: str, message: str
) -> None:
    response = app_client.get("/scrape", params={"target": target})
    assert response.status_code == 400
    assert message in response.json()["detail"]
    assert "secretpw" not in response.text
    assert app_client.get("/scrape").status_code == 422


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def test_basic_auth_guards_metrics_and_scrape_but_not_health(redis_url: str) -> None:
    settings = Settings(redis_url=redis_url, basic_auth_user="prom", basic_auth_password="pw-1")
    with client_for(settings) as client:
        denied = client.get("/metrics")
        assert denied.status_code == 401
        assert denied.headers["www-authenticate"].startswith("Basic")
        assert client.get("/metrics", headers=_basic("prom", "wrong")).status_code == 401
        assert client.get("/metrics", headers=_basic("other", "pw-1")).status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Basic !!"}).status_code == 401
        assert client.get("/metrics", headers=_basic("prom", "pw-1")).status_code == 200
        assert client.get("/scrape", params={"target": redis_url}).status_code == 401
        assert client.get("/healthz").status_code == 200
        assert client.get("/").status_code == 401


def test_with_auth_only_bare_liveness_and_readiness_are_public(
    redis_factory: Callable[..., RedisServer],
) -> None:
    """/readyz answers probes with the verdict only: the Redis address, its user and the
    error class are for authorized callers; no route list is served at all."""
    server = redis_factory()
    settings = Settings(redis_url=server.url, basic_auth_user="prom", basic_auth_password="pw-1")
    with client_for(settings) as client:
        for path in ("/openapi.json", "/docs", "/redoc"):
            assert client.get(path).status_code == 404, path
        ready = client.get("/readyz")
        assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
        assert str(server.port) in client.get("/readyz", headers=_basic("prom", "pw-1")).text
        server.kill()
        down = client.get("/readyz")
        assert (down.status_code, down.json()) == (503, {"status": "unavailable"})
        detailed = client.get("/readyz", headers=_basic("prom", "pw-1")).json()
        assert detailed["error"] == "connection"


def test_bearer_token_guards_metrics(redis_url: str) -> None:
    settings = Settings(redis_url=redis_url, bearer_token="tok-123")
    with client_for(settings) as client:
        assert client.get("/metrics").status_code == 401
        bad = client.get("/metrics", headers={"Authorization": "Bearer tok-12"})
        assert bad.status_code == 401 and bad.headers["www-authenticate"] == "Bearer"
        ok = client.get("/metrics", headers={"Authorization": "Bearer tok-123"})
        assert ok.status_code == 200 and "redis_up" in ok.text


def test_password_protected_redis_never_leaks_its_password(
    redis_factory: Callable[..., RedisServer], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = redis_factory("--requirepass", SECRET)
    url_with_password = f"redis://:{SECRET}@127.0.0.1:{server.port}/0"
    inst = instance_of(server.url)
    caplog.set_level(logging.DEBUG)
    with client_for(Settings(redis_url=server.url, redis_password=SECRET)) as client:
        good = client.get("/metrics").text
        assert sample(good, "redis_up", instance=inst) == 1.0
        ready = client.get("/readyz")
        assert ready.status_code == 200 and SECRET not in ready.text
        via_scrape = client.get("/scrape", params={"target": url_with_password}).text
        assert sample(via_scrape, "redis_up", instance=inst) == 1.0
    with client_for(Settings(redis_url=server.url, redis_password="wrong-password")) as client:
        bad = client.get("/metrics").text
        assert sample(bad, "redis_up", instance=inst) == 0.0
        assert sample(bad, "cache_exporter_last_scrape_error", error="auth", instance=inst) == 1.0
        unready = client.get("/readyz")
        assert unready.status_code == 503 and unready.json()["error"] == "auth"
    with client_for(Settings(redis_url=server.url)) as client:
        noauth = client.get("/metrics").text
        assert sample(noauth, "cache_exporter_last_scrape_error", error="auth", instance=inst)
    # the test's own HTTP client logs the URL it was given; the server side must not
    server_logs = [r.getMessage() for r in caplog.records if not r.name.startswith("httpx")]
    assert any("failed: auth" in line for line in server_logs)
    for text in (good, via_scrape, bad, noauth, *server_logs):
        assert SECRET not in text
    assert split_credentials(url_with_password)[0] == f"redis://127.0.0.1:{server.port}/0"


def test_background_sampler_and_eviction_tracker_are_wired_into_metrics(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    r.mset({f"session:{i}": "x" * 50 for i in range(20)})
    r.close()
    settings = Settings(redis_url=redis_url, sampler={"interval": 0.2, "pause": 0.0})
    deadline = time.monotonic() + 20
    with client_for(settings, background=True) as client:
        while True:
            text = client.get("/metrics").text
            keys = sample(text, "cache_keys", layer="redis", type="session")
            evicted = sample(
                text, "cache_evictions_total", layer="redis", type="session", reason="maxmemory"
            )
            if (keys is not None and evicted is not None) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    assert keys == 20.0
    assert (sample(text, "cache_size_bytes", layer="redis", type="session") or 0) > 0
    assert evicted == 0.0  # the eviction tracker is wired in too
    inst = instance_of(redis_url)
    for collector in ("keyspace_sampler", "evictions"):  # and their health, served together
        assert sample(text, "cache_exporter_collector_up", instance=inst, collector=collector)
        restarts = sample(
            text, "cache_exporter_collector_restarts_total", instance=inst, collector=collector
        )
        assert restarts == 0.0


@pytest.mark.parametrize(
    "query",
    ["no_such_option=1", "socket_timeout=soon", "ssl_cert_reqs=sometimes"],
)
def test_scrape_refuses_connection_options_redis_does_not_take_with_400(
    app_client: TestClient, redis_url: str, query: str
) -> None:
    target = redis_url.replace("redis://", f"redis://u:{SECRET}@") + "?" + query
    response = app_client.get("/scrape", params={"target": target})
    assert response.status_code == 400, response.text
    assert "query parameter 'target': expected" in response.json()["detail"]
    assert SECRET not in response.text


def test_a_password_in_the_url_query_authenticates(
    app_client: TestClient, redis_factory: Callable[..., RedisServer]
) -> None:
    server = redis_factory("--requirepass", SECRET)
    target = f"{server.url}?password={SECRET}"
    text = app_client.get("/scrape", params={"target": target}).text
    assert sample(text, "redis_up", instance=instance_of(server.url)) == 1.0, text
    assert SECRET not in text
    assert split_credentials(target) == (server.url, {"password": SECRET})


def test_scrape_errors_counter_of_a_target_only_grows_across_scrape_requests(
    app_client: TestClient, redis_factory: Callable[..., RedisServer]
) -> None:
    target = redis_factory()
    inst = instance_of(target.url)
    seen = []
    for up in (True, False, False, True):
        if not up and target.running:
            target.kill()
        if up and not target.running:
            target.start()
        text = app_client.get("/scrape", params={"target": target.url}).text
        assert sample(text, "redis_up", instance=inst) == (1.0 if up else 0.0)
        seen.append(sample(text, "cache_exporter_scrape_errors_total", instance=inst))
    # a counter: failed scrapes of this target so far, never back to 0 between requests
    assert seen == [0.0, 1.0, 2.0, 2.0]


def test_scrape_allow_list_refuses_targets_it_does_not_name(
    redis_factory: Callable[..., RedisServer],
) -> None:
    allowed, other = redis_factory(), redis_factory()
    settings = Settings(
        redis_url=allowed.url, scrape_allow=(f"127.0.0.1:{allowed.port}", "cache-*.internal")
    )
    with client_for(settings) as client:
        ok = client.get("/scrape", params={"target": allowed.url})
        assert sample(ok.text, "redis_up", instance=instance_of(allowed.url)) == 1.0
        for target in (other.url, "unix:///tmp/redis.sock", "redis://cache-1.internal.evil:6379"):
            refused = client.get("/scrape", params={"target": f"{target}"})
            assert refused.status_code == 403, (target, refused.text)
            assert "--scrape-allow" in refused.json()["detail"]
    with client_for(Settings(redis_url=allowed.url, scrape_allow=())) as client:
        assert client.get("/scrape", params={"target": allowed.url}).status_code == 403
    assert allowed_target("redis://CACHE-2.internal:7000/0", ("cache-*.internal",))


def test_scrape_reaches_only_the_configured_redis_by_default(
    redis_factory: Callable[..., RedisServer],
) -> None:
    own, other = redis_factory(), redis_factory()
    with client_for(Settings(redis_url=own.url)) as client:
        assert sample(
            client.get("/scrape", params={"target": own.url}).text,
            "redis_up",
            instance=instance_of(own.url),
        ) == 1.0
        refused = client.get("/scrape", params={"target": other.url})
        assert refused.status_code == 403
        assert "only the Redis of --redis-url" in refused.json()["detail"]


@pytest.mark.parametrize(
    "query",
    ["port={other}", "host=127.0.0.2", "path=/tmp/x.sock", "socket_timeout=600",
     "ssl_ca_certs=/etc/shadow", "db=1&db=2", "unix_socket_path=/tmp/x.sock"],
)  # fmt: skip
def test_scrape_refuses_query_options_that_could_redirect_the_connection(
    redis_factory: Callable[..., RedisServer], query: str
) -> None:
    """``redis://127.0.0.1/0?port=OTHER`` once passed a check of 127.0.0.1:6379 and
    reached OTHER: a target is now judged on where it connects, and options beyond
    ``db`` and ``password`` are refused."""
    own, other = redis_factory(), redis_factory()
    settings = Settings(redis_url=own.url, scrape_allow=(f"127.0.0.1:{own.port}",))
    target = f"redis://127.0.0.1/0?{query.format(other=other.port)}"
    probe = redis.Redis.from_url(other.url)
    try:
        before = probe.info("stats")["total_connections_received"]
        with client_for(settings) as client:
            response = client.get("/scrape", params={"target": target})
        assert response.status_code == 400, response.text
        assert "query parameter 'target': expected" in response.json()["detail"]
        # the probe's one connection is reused: any other would be the exporter's
        assert probe.info("stats")["total_connections_received"] == before
    finally:
        probe.close()


def test_scrape_allow_checks_the_effective_port_and_database(
    redis_factory: Callable[..., RedisServer],
) -> None:
    own = redis_factory()
    settings = Settings(redis_url=own.url, scrape_allow=(f"127.0.0.1:{own.port}/0",))
    with client_for(settings) as client:
        ok = client.get("/scrape", params={"target": f"redis://127.0.0.1:{own.port}?db=0"})
        assert sample(ok.text, "redis_up", instance=instance_of(own.url)) == 1.0
        for target in (f"redis://127.0.0.1:{own.port}/3", f"redis://127.0.0.1:{own.port}/0?db=3"):
            assert client.get("/scrape", params={"target": target}).status_code == 403, target
    assert parse_target("redis://h/2?db=5").db == 5  # redis-py lets ?db= win over the path
    assert parse_target("redis://127.0.0.1").address == "127.0.0.1:6379"
    assert parse_target("redis://[::1]:7000/0").address == "[::1]:7000"


def test_scrape_allow_is_read_from_flag_and_environment() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    config.configure_parser(parser)
    env = {"CACHE_EXPORTER_SCRAPE_ALLOW": "a:6379, b-*:*"}
    assert config.resolve(parser.parse_args([]), environ={}).scrape_allow is None
    assert config.resolve(parser.parse_args([]), environ=env).scrape_allow == ("a:6379", "b-*:*")
    off = config.resolve(parser.parse_args(["--scrape-allow", "none"]), environ=env)
    assert off.scrape_allow == ()


@pytest.mark.parametrize(
    "query",
    [
        f"target=redis%3A%2F%2Fu%3A{SECRET}%40h%3A6379%2F0",
        f"%74arget=redis://u:{SECRET}@h:6379/0",  # a percent-encoded parameter name
        f"module=redis&TARGET=rediss://:{SECRET}@h:6380",
        f"target=redis://h:6379/0?password%3D{SECRET}",
        f"target=redis://h:6379&auth_token={SECRET}",
    ],
)
def test_access_log_lines_never_carry_a_secret_from_the_query(query: str) -> None:
    from exporter.redaction import RedactQueries

    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 0, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5555", "GET", f"/scrape?{query}", "1.1", 200), None,
    )  # fmt: skip
    assert RedactQueries().filter(record)
    line = record.getMessage()
    assert SECRET not in line
    assert '"GET /scrape?' in line


def test_openmetrics_output_passes_the_strict_openmetrics_parser(
    redis_url: str,
) -> None:
    """promtool check metrics only reads the text format; OpenMetrics is checked by its parser."""
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    r = redis.Redis.from_url(redis_url)
    r.set("session:a", "1")
    with pytest.raises(redis.ResponseError):
        r.execute_command("NO-SUCH-COMMAND")  # an errorstats line
    r.close()
    with client_for(Settings(redis_url=redis_url), background=True) as client:
        for path, params in (("/metrics", {}), ("/scrape", {"target": redis_url})):
            text = client.get(path, params=params, headers={"Accept": OPENMETRICS}).text
            names = {f.name for f in text_string_to_metric_families(text)}
            assert {"redis_up", "redis_errors", "redis_commands"} <= names, names


def allowed_target(url: str, patterns: tuple[str, ...]) -> bool:
    return allowed(parse_target(url), patterns)


def test_serve_reads_a_redis_on_a_unix_socket(
    redis_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    """``unix:///path.sock`` (as --help documents it) once crashed at startup: the
    credentials were split off with urlunsplit, which wrote ``unix:/path.sock``."""
    sock = tmp_path / "redis.sock"
    redis_factory("--unixsocket", str(sock), "--unixsocketperm", "700")
    clean = (f"unix://{sock}?db=2", {"password": "pw"})
    assert split_credentials(f"unix://:pw@{sock}?db=2") == clean
    with client_for(Settings(redis_url=f"unix://{sock}")) as client:
        assert sample(client.get("/metrics").text, "redis_up", instance=str(sock)) == 1.0


def test_no_redirect_is_built_from_the_host_header(app_client: TestClient) -> None:
    answer = app_client.get(
        "/metrics/", headers={"Host": "evil.example"}, follow_redirects=False
    )
    assert answer.status_code == 404
    assert "location" not in answer.headers


def test_serve_counts_the_cdn_layer_from_a_cloudfront_directory(
    redis_url: str, tmp_path: Path
) -> None:
    """--cdn-log cloudfront:DIR wired into the app: the reader's thread runs with the
    app, and /metrics serves one cache_hits_total family with layer="cdn"."""
    from tests.support.cloudfront import cf_file, cf_line

    logs = tmp_path / "cf"
    logs.mkdir()
    cf_file(logs / "E2.2026-11-29-17.x.gz", [cf_line("/api/a", "Hit"), cf_line("/x.css", "Miss")])
    settings = Settings(
        redis_url=redis_url,
        cdn_logs=(("cloudfront", logs),),
        cdn_state_file=tmp_path / "cdn.state",
        cdn_poll_interval=0.1,
    )
    with client_for(settings, background=True) as client:
        deadline = time.monotonic() + 10
        while True:
            text = client.get("/metrics").text
            if sample(text, "cache_hits_total", layer="cdn", type="api") == 1:
                break
            assert time.monotonic() < deadline, text
            time.sleep(0.05)
    assert sample(text, "cache_misses_total", layer="cdn", type="asset") == 1
    assert text.count("# TYPE cache_hits_total counter") == 1
