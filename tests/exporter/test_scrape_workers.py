"""``/scrape?target=`` with per-type families: workers per target, started on first
scrape, stopped when idle, capped; against real redis-servers."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
import redis
from fastapi.testclient import TestClient

from exporter.collectors.health import CollectorHealth
from exporter.collectors.targets import TargetWorkers
from exporter.config import SamplerOptions, Settings, instance_of
from exporter.server import create_app
from tests.exporter.conftest import promtool_check, sample
from tests.support.processes import RedisServer


@contextmanager
def exporter(own: str, **overrides: object) -> Iterator[TestClient]:
    options: dict[str, object] = {
        "redis_url": own, "scrape_timeout": 4.0, "scrape_allow": ("127.0.0.1",),
        "sampler": SamplerOptions(interval=0.2, pause=0.0), "configure_notifications": True,
    }  # fmt: skip
    settings = Settings(**{**options, **overrides})  # type: ignore[arg-type]
    with TestClient(create_app(settings, background=True)) as client:
        yield client


def scrape(client: TestClient, url: str) -> str:
    response = client.get("/scrape", params={"target": url})
    assert response.status_code == 200, response.text
    return response.text


def until(check: Callable[[], str | None], timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while (found := check()) is None:
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.1)
    return found


def exporter_connections(server: RedisServer) -> int:
    """Clients connected to ``server`` other than the one asking."""
    with redis.Redis(port=server.port) as conn:
        return len(conn.client_list()) - 1


def test_a_target_gets_per_type_families_from_its_own_workers(
    redis_url: str, redis_factory: Callable[..., RedisServer]
) -> None:
    target = redis_factory()
    with redis.Redis(port=target.port) as conn:
        for n in range(25):
            conn.set(f"user:{n}", "u")
    with exporter(redis_url) as client:
        first = scrape(client, target.url)
        inst = instance_of(target.url)
        assert sample(first, "cache_exporter_scrape_target_workers", instance=inst) == 1.0
        assert sample(client.get("/metrics").text, "cache_exporter_scrape_targets_live") == 1.0

        def counted() -> str | None:
            text = scrape(client, target.url)
            return text if sample(text, "cache_keys", layer="redis", type="user") == 25 else None

        text = until(counted)
        with redis.Redis(port=target.port) as conn:
            for n in range(10):
                conn.set(f"session:{n}", "s", px=20)
        expired = {"layer": "redis", "type": "session", "reason": "expired"}
        text = until(
            lambda: (
                t
                if sample(t := scrape(client, target.url), "cache_evictions_total", **expired) == 10
                else None
            )
        )
        assert sample(text, "redis_up", instance=inst) == 1.0
        assert sample(text, "cache_exporter_collector_up", instance=inst,
                      collector="keyspace_sampler") == 1.0  # fmt: skip
        assert promtool_check(text).returncode == 0, promtool_check(text).stdout
        # the exporter's own Redis has keys of its own: not in this target's answer
        assert (
            sample(text, "cache_exporter_sampler_cycles_total", instance=instance_of(redis_url))
            is None
        )


def test_beyond_the_cap_a_new_target_gets_its_info_view_only(
    redis_url: str, redis_factory: Callable[..., RedisServer]
) -> None:
    targets = [redis_factory() for _ in range(3)]
    with exporter(redis_url, scrape_max_targets=2) as client:
        for server in targets[:2]:
            scrape(client, server.url)
        third = scrape(client, targets[2].url)
        inst = instance_of(targets[2].url)
        assert sample(third, "redis_up", instance=inst) == 1.0
        assert sample(third, "cache_exporter_scrape_target_workers", instance=inst) == 0.0
        assert "cache_keys" not in third and "cache_evictions_total" not in third
        own = client.get("/metrics").text
        assert sample(own, "cache_exporter_scrape_targets_live") == 2.0
        assert sample(own, "cache_exporter_scrape_targets_max") == 2.0
        assert sample(own, "cache_exporter_scrape_targets_refused_total") == 1.0
        # a target that already has workers keeps them
        again = scrape(client, targets[0].url)
        assert sample(again, "cache_exporter_scrape_target_workers",
                      instance=instance_of(targets[0].url)) == 1.0  # fmt: skip


def test_an_unscraped_target_stops_its_workers_and_frees_its_slot(
    redis_url: str, redis_factory: Callable[..., RedisServer]
) -> None:
    first, second = redis_factory(), redis_factory()
    with exporter(redis_url, scrape_max_targets=1, scrape_target_idle=0.5) as client:
        scrape(client, first.url)
        until(lambda: "up" if exporter_connections(first) >= 2 else None)  # sampler, tracker
        own = until(
            lambda: (
                t
                if sample(t := client.get("/metrics").text, "cache_exporter_scrape_targets_live")
                == 0
                else None
            ),
            timeout=10,
        )
        assert sample(own, "cache_exporter_scrape_targets_expired_total") == 1.0
        until(lambda: "closed" if exporter_connections(first) == 0 else None, timeout=10)
        # the slot is free again: another target gets workers
        text = scrape(client, second.url)
        assert sample(text, "cache_exporter_scrape_target_workers",
                      instance=instance_of(second.url)) == 1.0  # fmt: skip


# --- the pool's bookkeeping, with stand-in workers -------------------------------------


@dataclass
class FakeWorker:
    name: str
    log: list[str] = field(default_factory=list)
    health: CollectorHealth = field(default_factory=lambda: CollectorHealth("evictions", "x"))
    running: bool = False

    def start(self) -> None:
        self.running = True
        self.log.append(f"start {self.name}")

    def stop(self) -> None:
        self.running = False
        self.log.append(f"stop {self.name}")

    def collect(self) -> Iterator[object]:
        return iter(())


def test_workers_start_once_expire_by_the_clock_and_respect_the_cap() -> None:
    now = [0.0]
    log: list[str] = []
    pool: TargetWorkers[str] = TargetWorkers(
        lambda key: [FakeWorker(key, log)], max_targets=2, idle_timeout=10, clock=lambda: now[0]
    )
    a = pool.acquire("a")
    assert pool.acquire("a") is a and log == ["start a"]
    now[0] = 5
    pool.acquire("b")
    assert pool.acquire("c") is None and len(pool) == 2  # full: refused
    now[0] = 12  # a idle for 12 s, b for 7 s
    assert pool.reap() == 1 and log[-1] == "stop a"
    assert pool.acquire("c") is not None and len(pool) == 2
    now[0] = 30  # a new target's arrival also expires the idle ones first
    assert pool.acquire("d") is not None
    assert sorted(log[-3:]) == ["start d", "stop b", "stop c"]
    pool.stop()
    assert log[-1] == "stop d" and len(pool) == 0


@pytest.mark.parametrize(("max_targets", "idle"), [(0, 1.0), (1, 0.0)])
def test_the_pool_refuses_nonsense_bounds(max_targets: int, idle: float) -> None:
    with pytest.raises(ValueError, match="max_targets >= 1 and idle_timeout > 0"):
        TargetWorkers(lambda key: [], max_targets=max_targets, idle_timeout=idle)
