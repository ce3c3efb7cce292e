"""The PostgreSQL buffer-cache layer against a real PostgreSQL cluster."""

from __future__ import annotations

import logging
import time

import psycopg
import pytest
from fastapi.testclient import TestClient

from exporter import metrics
from exporter.collectors.postgres import PostgresCollector
from exporter.config import Settings
from exporter.server import create_app
from tests.exporter.conftest import promtool_check, sample, samples
from tests.support.postgres import PostgresServer
from tests.support.processes import free_port

LABELS = {"layer": metrics.LAYER_POSTGRES, "type": metrics.TYPE_POSTGRES_BUFFER}


def _counters(client: TestClient) -> tuple[float, float, str]:
    text = client.get("/metrics").text
    hits = sample(text, "cache_hits_total", **LABELS)
    misses = sample(text, "cache_misses_total", **LABELS)
    assert hits is not None and misses is not None, text
    return hits, misses, text


def test_hits_and_misses_move_with_queries(postgres: PostgresServer, redis_url: str) -> None:
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS warm")
        conn.execute(
            "CREATE TABLE warm AS SELECT g AS id, repeat('x', 200) AS pad"
            " FROM generate_series(1, 5000) g"
        )
        conn.execute("VACUUM ANALYZE warm")
        pages = conn.execute("SELECT relpages FROM pg_class WHERE relname = 'warm'").fetchone()
    assert pages is not None and pages[0] > 50
    postgres.stop()  # empties shared buffers: the next read of the table must miss
    postgres.start()
    settings = Settings(redis_url=redis_url, postgres_dsn=postgres.dsn)
    with TestClient(create_app(settings, background=False)) as client:
        hits0, misses0, text = _counters(client)
        assert sample(text, "cache_exporter_postgres_up") == 1.0
        with psycopg.connect(postgres.dsn, autocommit=True) as conn:
            for _ in range(2):  # the first scan reads from disk, the second from buffers
                conn.execute("SELECT count(*) FROM warm").fetchone()
        deadline = time.monotonic() + 15
        while True:  # backends report their stats within a second and at exit
            hits, misses, text = _counters(client)
            moved = misses >= misses0 + pages[0] and hits >= hits0 + pages[0]
            if moved or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert misses >= misses0 + pages[0]
    assert hits >= hits0 + pages[0]
    result = promtool_check(text)
    assert result.returncode == 0, result.stdout + result.stderr


def test_only_the_fixed_buffer_type_is_a_label_value(postgres: PostgresServer) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    registry.register(PostgresCollector(postgres.dsn))
    found = samples(generate_latest(registry).decode())
    contract = ("cache_hits_total", "cache_misses_total")
    label_sets = {labels for (name, labels) in found if name in contract}
    assert label_sets == {frozenset(LABELS.items())}


def test_down_postgres_reports_up_0_and_the_exporter_keeps_serving(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    dsn = f"postgresql://app:pg-secret-77@127.0.0.1:{free_port()}/app"
    caplog.set_level(logging.WARNING)
    with TestClient(
        create_app(Settings(redis_url=redis_url, postgres_dsn=dsn), background=False)
    ) as client:
        response = client.get("/metrics")
    assert response.status_code == 200
    assert sample(response.text, "cache_exporter_postgres_up") == 0.0
    assert sample(response.text, "redis_up", instance=redis_url.split("//")[1].split("/")[0]) == 1.0
    assert "cache_hits_total" not in response.text
    assert "postgresql://app:***@127.0.0.1" in caplog.text
    assert "pg-secret-77" not in caplog.text + response.text
    assert "pg-secret-77" not in repr(PostgresCollector(dsn))
