"""``cache-slo-exporter serve`` as a real process against real redis-servers."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from exporter.config import instance_of
from tests.exporter.conftest import Exporter, exporter_command, make_tls_certs, sample
from tests.support.processes import RedisServer, cleanup_env, free_port
from tests.support.prometheus import PrometheusServer

SECRET = "serve-test-secret-5521"
StartExporter = Callable[..., Exporter]


def _timed_metrics(exporter: Exporter) -> tuple[str, float]:
    started = time.monotonic()
    text = exporter.metrics()
    return text, time.monotonic() - started


def _wait_for(
    exporter: Exporter, name: str, value: float, deadline: float = 15.0, **labels: str
) -> str:
    end = time.monotonic() + deadline
    while True:
        text = exporter.metrics()
        if sample(text, name, **labels) == value or time.monotonic() > end:
            return text
        time.sleep(0.05)


def test_redis_killed_then_restarted_goes_up_0_fast_then_up_1(
    redis_factory: Callable[..., RedisServer], exporter_factory: StartExporter
) -> None:
    server = redis_factory()
    exporter = exporter_factory("--redis-url", server.url, "--scrape-timeout", "2")
    inst = {"instance": instance_of(server.url)}
    assert sample(exporter.metrics(), "redis_up", **inst) == 1.0

    server.kill()
    text, elapsed = _timed_metrics(exporter)
    assert sample(text, "redis_up", **inst) == 0.0
    assert sample(text, "cache_exporter_last_scrape_error", error="connection", **inst) == 1.0
    assert elapsed < 2.0  # within the configured scrape deadline
    assert exporter.get("/readyz").status_code == 503
    assert exporter.get("/healthz").status_code == 200

    server.start()
    text = _wait_for(exporter, "redis_up", 1.0, **inst)
    assert sample(text, "redis_up", **inst) == 1.0
    assert (sample(text, "cache_exporter_scrape_errors_total", **inst) or 0) >= 1
    assert sample(text, "cache_exporter_last_scrape_error", error="", **inst) == 0.0


def test_stalled_redis_gives_up_0_with_timeout_before_the_deadline(
    redis_factory: Callable[..., RedisServer], exporter_factory: StartExporter
) -> None:
    server = redis_factory()
    exporter = exporter_factory("--redis-url", server.url, "--scrape-timeout", "2")
    inst = {"instance": instance_of(server.url)}
    assert sample(exporter.metrics(), "redis_up", **inst) == 1.0
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGSTOP)  # accepts connections, never answers
    try:
        text, elapsed = _timed_metrics(exporter)
        assert sample(text, "redis_up", **inst) == 0.0
        assert sample(text, "cache_exporter_last_scrape_error", error="timeout", **inst) == 1.0
        assert elapsed < 2.0
        assert exporter.get("/healthz").status_code == 200
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)
    assert sample(_wait_for(exporter, "redis_up", 1.0, **inst), "redis_up", **inst) == 1.0


def test_unreachable_redis_at_startup_still_serves(exporter_factory: StartExporter) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    exporter = exporter_factory("--redis-url", url)
    text = exporter.metrics()
    assert sample(text, "redis_up", instance=instance_of(url)) == 0.0
    assert exporter.get("/readyz").status_code == 503
    assert exporter.get("/healthz").json() == {"status": "ok"}


@pytest.mark.slow
def test_passwords_never_appear_in_logs_metrics_or_errors(
    redis_factory: Callable[..., RedisServer], exporter_factory: StartExporter, tmp_path: Path
) -> None:
    """Every URL carries the secret (Redis, PostgreSQL, Prometheus, a /scrape target),
    every path that can fail does, at debug level: nothing the process wrote or
    answered holds it, third-party loggers included (httpx logs each request URL)."""
    server = redis_factory("--requirepass", SECRET)
    url = f"redis://default:{SECRET}@127.0.0.1:{server.port}/0"
    with PrometheusServer(tmp_path / "prom", {"global": {"scrape_interval": "1s"}}) as prom:
        prometheus = prom.url.replace("http://", f"http://admin:{SECRET}@")
        exporter = exporter_factory(
            "--log-level",
            "debug",
            "--scrape-allow",
            "127.0.0.1",
            env={
                "REDIS_URL": url,
                "POSTGRES_DSN": f"host=127.0.0.1 port={free_port()} password={SECRET}",
                "PROMETHEUS_URL": prometheus,
            },
        )
        inst = {"instance": instance_of(server.url)}
        texts = [exporter.metrics(), exporter.get("/readyz").text]
        assert sample(texts[0], "redis_up", **inst) == 1.0
        assert sample(texts[0], "cache_exporter_postgres_up") == 0.0
        page = exporter.get("/")
        assert page.status_code == 200, page.text
        texts.append(page.text)
        texts.append(exporter.get("/scrape", params={"target": url}).text)
        texts.append(exporter.get("/scrape", params={"target": f"redis://:{SECRET}@h:x/0"}).text)
        wrong = f"redis://default:{SECRET}x@127.0.0.1:{server.port}/0"
        texts.append(exporter.get("/scrape", params={"target": wrong}).text)
        texts.append(exporter.get(f"/nowhere?password={SECRET}").text)
    texts.append(exporter.get("/").text)  # Prometheus gone: the error page
    exporter.proc.terminate()
    # uvicorn shuts down gracefully, then re-raises the signal for the supervisor to see
    assert exporter.proc.wait(10) in (0, -signal.SIGTERM)
    log = exporter.log
    assert "Application shutdown complete" in log
    assert "redis://default:***@127.0.0.1" in log  # the startup line, redacted
    assert "password=***" in log
    assert "GET /scrape?target=redis://default:***@" in log
    assert "HTTP Request: GET http://127.0.0.1" in log  # httpx's own lines are there
    for text in (*texts, log):
        assert SECRET not in text


def test_bad_flags_exit_2_naming_the_flag_without_secrets() -> None:
    cases = [
        (["--scrape-timeout", "never"], "error: --scrape-timeout: expected a number of seconds"),
        ([f"--redis-url=redis://u:{SECRET}@h:6379/x"], "error: --redis-url: expected a database"),
        ([f"--prometheus-url=http://u:{SECRET}@[bad"], "error: --prometheus-url: expected an"),
        ([f"--prometheus-url=http://u:{SECRET}@h:port"], "error: --prometheus-url: expected an"),
        ([f"--prometheus-url=u:{SECRET}@h"], "error: --prometheus-url: expected an"),
        ([f"--prometheus-external-url=https://u:{SECRET}@h"],
         "error: --prometheus-external-url: expected an http:// or https:// URL without user"),
        ([f"--prometheus-external-url=https://{SECRET}@h:port"],
         "error: --prometheus-external-url: expected an"),
        ([f"--postgres-dsn=host=h password={SECRET} bad"], "error: --postgres-dsn: expected"),
        (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    ]
    for args, message in cases:
        result = subprocess.run(
            exporter_command(*args), capture_output=True, text=True, timeout=60,
            env=cleanup_env(), check=False,
        )  # fmt: skip
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr, result.stderr
        assert SECRET not in result.stderr + result.stdout


def test_exporter_counts_scrapes_of_a_redis_being_used(
    redis_factory: Callable[..., RedisServer], exporter_factory: StartExporter
) -> None:
    server = redis_factory()
    exporter = exporter_factory("--redis-url", server.url)
    r = redis.Redis.from_url(server.url)
    for i in range(5):
        r.get(f"session:{i}")
    text = exporter.metrics()
    r.close()
    inst = {"instance": instance_of(server.url)}
    assert sample(text, "redis_keyspace_misses_total", **inst) == 5.0
    assert (sample(text, "cache_exporter_scrape_duration_seconds", **inst) or -1) >= 0


@pytest.mark.parametrize("accept", ["", "application/openmetrics-text; version=1.0.0"])
def test_process_serves_both_exposition_formats(
    redis_factory: Callable[..., RedisServer], exporter_factory: StartExporter, accept: str
) -> None:
    server = redis_factory()
    exporter = exporter_factory("--redis-url", server.url)
    response = exporter.get("/metrics", headers={"Accept": accept} if accept else {})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(accept or "text/plain; version=0.0.4")


def test_rediss_with_an_acl_user_and_a_password_file(
    redis_factory: Callable[..., RedisServer], exporter_factory: StartExporter, tmp_path: Path
) -> None:
    certs = make_tls_certs(tmp_path / "tls")
    tls_port = free_port()
    server = redis_factory(
        "--tls-port", str(tls_port),
        "--tls-cert-file", str(certs["server.crt"]),
        "--tls-key-file", str(certs["server.key"]),
        "--tls-ca-cert-file", str(certs["ca.crt"]),
        "--tls-auth-clients", "no",
        "--user", "default", "off",
        "--user", "exporter", "on", f">{SECRET}", "~*", "&*", "+@all",
    )  # fmt: skip
    password_file = tmp_path / "redis-password"
    password_file.write_text(SECRET + "\n")
    url = f"rediss://exporter@127.0.0.1:{tls_port}/0?ssl_ca_certs={certs['ca.crt']}"
    exporter = exporter_factory("--redis-url", url, "--redis-password-file", str(password_file))
    text = exporter.metrics()
    inst = {"instance": f"127.0.0.1:{tls_port}"}
    assert sample(text, "redis_up", **inst) == 1.0, exporter.log
    assert exporter.get("/readyz").status_code == 200
    # the plain port refuses the (disabled) default user: the ACL user did the work
    plain = redis.Redis.from_url(server.url)
    with pytest.raises(redis.AuthenticationError):
        plain.info()
    plain.close()
    assert SECRET not in text + exporter.log


@pytest.mark.slow
def test_serve_judges_each_service_by_the_slo_file_given_for_it(
    exporter_factory: StartExporter, tmp_path: Path
) -> None:
    """``serve --slo A --slo B``: the page shows A's service by default, B's by its own
    objectives, links to the external URL, and refuses a service no file defines."""
    other = tmp_path / "checkout.yaml"
    other.write_text(
        "version: 1\nservice: {name: checkout}\nwindow: 7d\n"
        "hit_rate: {objective: 0.95, min_read_rate: 0.1}\n"
        "latency: {operation: get, threshold: 5ms, objective: 0.999}\n"
        "key_types:\n  - {name: cart, ttl: 1h, tenant_scoped: false, hit_rate_objective: 0.9}\n"
    )
    with PrometheusServer(tmp_path / "prom", {"global": {"scrape_interval": "1s"}}) as prom:
        exporter = exporter_factory(
            "--redis-url", f"redis://127.0.0.1:{free_port()}/0",
            "--slo", "exporter/data/slo.yaml", "--slo", str(other),
            "--prometheus-url", prom.url,
            "--prometheus-external-url", "https://prometheus.example.com/prom",
        )  # fmt: skip
        first, second = exporter.get("/"), exporter.get("/?service=checkout")
        unknown = exporter.get("/?service=search")
    assert first.status_code == second.status_code == 200
    assert '<strong id="service">cache-app</strong>' in first.text
    assert '<strong id="service">checkout</strong>' in second.text
    assert 'id="hit-rate-cart"' in second.text and "<small>over 7d</small>" in second.text
    assert 'href="https://prometheus.example.com/prom/graph?' in second.text
    assert unknown.status_code == 400
    assert "(cache-app, checkout), got &#39;search&#39;" in unknown.text
