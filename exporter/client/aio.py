"""``AsyncCacheService``: the same interface over ``redis.asyncio``, for asyncio apps.

Same rules as :mod:`exporter.client.sync` (fail open, metrics, keys, TTLs,
stampede layers, tags, versions).  Like the ``redis.asyncio`` client under it, a
service belongs to one event loop (its single-flight table included).  An asyncio
``RedisCluster`` is accepted; it has no pub/sub in redis-py, so
:meth:`AsyncCacheService.subscribe` refuses it with :class:`CacheConfigError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from time import perf_counter
from typing import Any, TypeVar

import redis.asyncio as aredis
import redis.asyncio.cluster as acluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from exporter.client.core import (
    INVALIDATION_CHANNEL,
    MISSING,
    ServiceCore,
    split_options,
    xfetch_due,
)
from exporter.client.errors import CacheConfigError, CacheSerializationError
from exporter.client.instrumentation import TypeChildren
from exporter.client.keys import KeyPattern
from exporter.client.policy import Seconds
from exporter.client.pubsub import AsyncSubscription
from exporter.client.recorder import FLUSH_KEYS
from exporter.client.serialization import unwrap, wrap
from exporter.client.stampede import (
    EXTEND_SCRIPT,
    POLL_FIRST,
    POLL_MAX,
    POP_TAG_SCRIPT,
    RELEASE_SCRIPT,
    AsyncSingleFlight,
)

T = TypeVar("T")


class AsyncCacheService(ServiceCore):
    """Instrumented, tenant-isolated, fail-open cache over ``redis.asyncio``."""

    def __init__(self, client: aredis.Redis | acluster.RedisCluster, **options: Any) -> None:
        super().__init__(client, **options)
        self.redis: Any = client
        any_client: Any = client
        self.is_cluster = isinstance(client, acluster.RedisCluster)
        self._flight = AsyncSingleFlight()
        self._release = any_client.register_script(RELEASE_SCRIPT)
        self._extend = any_client.register_script(EXTEND_SCRIPT)
        #: (lock key, token) -> the task renewing its lease while this service holds it
        self._renewals: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._pop_tag = any_client.register_script(POP_TAG_SCRIPT)
        self._lat_get = self._i.latency["get"]
        self._lat_mget = self._i.latency["mget"]
        self._lat_goc = self._i.latency["get_or_compute"]
        self._mget = any_client.mget_nonatomic if self.is_cluster else any_client.mget
        self._classify = self._i.classify
        self._loads = self.serializer.loads

    @classmethod
    def from_url(cls, url: str, *, cluster: bool = False, **options: Any) -> AsyncCacheService:
        """Like :meth:`exporter.client.CacheService.from_url`, for asyncio."""
        service, redis_opts = split_options(options)
        redis_opts.setdefault("retry", Retry(NoBackoff(), 0))
        client: Any
        if cluster:
            client = acluster.RedisCluster.from_url(url, **redis_opts)
        else:
            client = aredis.Redis.from_url(url, **redis_opts)
        return cls(client, **service)

    async def aclose(self) -> None:
        """Stop every listener and lock-renewal task, then close the client."""
        for sub in list(self.subscriptions):
            await sub.stop()
        for task in list(self._renewals.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._rec.flush()
        await self.redis.aclose()

    async def _call(
        self, op: str, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any
    ) -> T | Any:
        br = self.breaker
        if br.open_until and self._blocked(op):
            return MISSING
        latency = self._i.latency[op]
        t0 = perf_counter()
        try:
            result = await fn(*args, **kwargs)
        except Exception as exc:
            latency.observe(perf_counter() - t0)
            self._failed(op, exc)
            return MISSING
        rec = self._rec
        rec.push((latency, perf_counter() - t0, None, None))
        if len(rec.events) > rec.limit:
            rec.flush()
        if br.failures:
            br.success()
        return result

    # --- reads ----------------------------------------------------------------------

    async def get(self, key: str) -> Any:
        br = self.breaker
        if br.open_until and not br.allow():
            self._i.errors["get"]["circuit_open"].inc()
            self._count_miss(key)
            return None
        t0 = perf_counter()
        try:
            data = await self.redis.get(key)
        except Exception as exc:
            self._lat_get.observe(perf_counter() - t0)
            self._failed("get", exc)
            self._count_miss(key)
            return None
        seconds = perf_counter() - t0
        if br.failures:
            br.success()
        # the hit or miss is counted (and the key classified) later, in a batch: see
        # exporter.client.recorder for why the hot path only queues one event:
        # (latency child, seconds, key looked up, key if it missed)
        rec = self._rec
        if data is None:
            rec.push((self._lat_get, seconds, key, key))
            value = None
        else:
            value = MISSING
            if not data or data[0]:  # plain: get_or_compute's values start with NUL
                try:
                    value = self._loads(data)
                except Exception:  # undecodable: decoded (and counted) again below
                    value = MISSING
            if value is MISSING:
                value = self._decode("get", unwrap(data)[0])
            if value is MISSING:
                rec.push((self._lat_get, seconds, key, key))
                value = None
            else:
                rec.push((self._lat_get, seconds, key, None))
        if len(rec.events) > rec.limit:
            rec.flush()
        return value

    async def mget(self, keys: Iterable[str]) -> list[Any]:
        keys = list(keys)
        if not keys:
            return []
        br = self.breaker
        if br.open_until and self._blocked("mget"):
            return self._mget_failed(keys)
        t0 = perf_counter()
        try:
            raw = await self._mget(keys)
        except Exception as exc:
            self._lat_mget.observe(perf_counter() - t0)
            self._failed("mget", exc)
            return self._mget_failed(keys)
        seconds = perf_counter() - t0
        if br.failures:
            br.success()
        out, missed = self._mget_decode("mget", keys, raw)
        rec = self._rec  # counted later, in a batch (as in get)
        rec.push((self._lat_mget, seconds, keys, missed))
        rec.queued_keys += len(keys)
        if len(rec.events) > rec.limit or rec.queued_keys > FLUSH_KEYS:
            rec.flush()
        return out

    # --- writes ---------------------------------------------------------------------

    async def set(self, key: str, value: Any, ttl: Seconds | None = None) -> bool:
        ti = self._i.classify(key)
        px = self._ttl_for(ti, ttl)
        payload = self._encode(ti, value)
        return await self._call("set", self.redis.set, key, payload, px=px) is not MISSING

    async def mset(
        self, entries: Mapping[str, Any] | Iterable[tuple[str, Any]], ttl: Seconds | None = None
    ) -> bool:
        items = list(entries.items() if isinstance(entries, Mapping) else entries)
        encoded = []
        for key, value in items:
            ti = self._i.classify(key)
            encoded.append((key, self._encode(ti, value), self._ttl_for(ti, ttl)))
        if not encoded:
            return True

        async def run() -> list[Any]:
            pipe = self.redis.pipeline(transaction=False)
            for key, payload, px in encoded:
                pipe.set(key, payload, px=px)
            return await pipe.execute()  # type: ignore[no-any-return]

        return await self._call("mset", run) is not MISSING

    async def delete(self, *keys: str, broadcast: bool = False) -> int:
        if not keys:
            return 0
        removed = await self._call("delete", self.redis.unlink, *keys)
        if broadcast:
            await self.broadcast_invalidation(keys=list(keys))
        return 0 if removed is MISSING else int(removed)

    async def delete_pattern(self, pattern: KeyPattern | str, batch: int = 500) -> int:
        checked = self._check_batch(pattern, batch)

        async def run() -> int:
            removed = 0
            chunk: list[Any] = []
            async for key in self.redis.scan_iter(match=str(checked), count=batch):
                chunk.append(key)
                if len(chunk) >= batch:
                    removed += int(await self.redis.unlink(*chunk))
                    chunk.clear()
            if chunk:
                removed += int(await self.redis.unlink(*chunk))
            return removed

        result = await self._call("delete_pattern", run)
        return 0 if result is MISSING else int(result)

    async def incr(self, key: str, amount: int = 1, ttl: Seconds | None = None) -> int | None:
        return await self._counter("incr", key, self._amount(amount), ttl)

    async def decr(self, key: str, amount: int = 1, ttl: Seconds | None = None) -> int | None:
        return await self._counter("decr", key, -self._amount(amount), ttl)

    async def _counter(self, op: str, key: str, amount: int, ttl: Seconds | None) -> int | None:
        px = self._ttl_for(self._i.classify(key), ttl)

        async def run() -> int:
            pipe = self.redis.pipeline(transaction=False)
            pipe.incrby(key, amount)
            pipe.pexpire(key, px, nx=True)
            return int((await pipe.execute())[0])

        result = await self._call(op, run)
        return None if result is MISSING else int(result)

    async def lpush(self, key: str, *values: Any, ttl: Seconds | None = None) -> int | None:
        ti = self._i.classify(key)
        px = self._ttl_for(ti, ttl)
        self._check_values(values)
        payloads = [self._encode(ti, v) for v in values]

        async def run() -> int:
            pipe = self.redis.pipeline(transaction=False)
            pipe.lpush(key, *payloads)
            pipe.pexpire(key, px, nx=True)
            return int((await pipe.execute())[0])

        result = await self._call("lpush", run)
        return None if result is MISSING else int(result)

    async def rpop(self, key: str) -> Any:
        data = await self._call("rpop", self.redis.rpop, key)
        if data is MISSING or data is None:
            return None
        value = self._decode("rpop", data)
        return None if value is MISSING else value

    # --- get_or_compute -------------------------------------------------------------------

    async def get_or_compute(
        self, key: str, loader: Callable[[], Awaitable[T]], ttl: Seconds | None = None
    ) -> T:
        """Cached value of ``key`` or ``await loader()`` stored with the type's TTL."""
        ti = self._i.classify(key)
        px = self._ttl_for(ti, ttl)
        value, delta, expiry = await self._cached(key)
        if value is not MISSING:
            if xfetch_due(delta, expiry, time.time(), self.xfetch_beta):
                return await self._refresh_early(key, loader, ti, px, value)
            return value  # type: ignore[no-any-return]
        return await self._flight.do(key, lambda: self._fill(key, loader, ti, px))

    async def _cached(self, key: str) -> tuple[Any, float, float]:
        """get_or_compute's read: (value, compute seconds, expiry), value ``MISSING`` on a
        miss or when Redis is unavailable; the hit or miss is queued with the latency, as
        in :meth:`get`."""
        br = self.breaker
        if br.open_until and self._blocked("get_or_compute"):
            self._count_miss(key)
            return MISSING, 0.0, 0.0
        t0 = perf_counter()
        try:
            data = await self.redis.get(key)
        except Exception as exc:
            self._lat_goc.observe(perf_counter() - t0)
            self._failed("get_or_compute", exc)
            self._count_miss(key)
            return MISSING, 0.0, 0.0
        seconds = perf_counter() - t0
        if br.failures:
            br.success()
        value, delta, expiry = MISSING, 0.0, 0.0
        if data is not None:
            payload, delta, expiry = unwrap(data)
            value = self._decode("get_or_compute", payload)
        rec = self._rec
        rec.push((self._lat_goc, seconds, key, key if value is MISSING else None))
        if len(rec.events) > rec.limit:
            rec.flush()
        return value, delta, expiry

    async def _refresh_early(
        self, key: str, loader: Callable[[], Awaitable[T]], ti: TypeChildren, px: int, stale: Any
    ) -> T:
        token = await self._acquire(key)
        if token is None:
            return stale  # type: ignore[no-any-return]
        try:
            return await self._compute_and_store(key, loader, ti, px)
        except CacheSerializationError:
            raise  # the caller's bug, not the source's
        except Exception as exc:  # the value has not expired: keep serving it
            self._refresh_failed(ti, exc)
            return stale  # type: ignore[no-any-return]
        finally:
            await self._release_lock(key, token)

    async def _fill(
        self, key: str, loader: Callable[[], Awaitable[T]], ti: TypeChildren, px: int
    ) -> T:
        """Like :meth:`exporter.client.CacheService._fill`: wait while another process
        holds the lock (at most ``lock_max_wait``), take it over when it goes."""
        deadline = time.monotonic() + self.lock_max_wait
        poll = POLL_FIRST
        while True:
            token = await self._acquire(key)
            if token is not None:
                try:
                    if token != "" and (found := await self._read_quiet(key)) is not MISSING:
                        return found  # type: ignore[no-any-return]
                    return await self._compute_and_store(key, loader, ti, px)
                finally:
                    await self._release_lock(key, token)
            await asyncio.sleep(poll)
            poll = min(poll * 2, POLL_MAX)
            found = await self._read_quiet(key)
            if found is not MISSING:
                return found  # type: ignore[no-any-return]
            if time.monotonic() >= deadline:
                self._i.errors["get_or_compute"]["timeout"].inc()
                return await self._compute_and_store(key, loader, ti, px)

    async def _read_quiet(self, key: str) -> Any:
        data = await self._call("get_or_compute", self.redis.get, key)
        if data is MISSING or data is None:
            return MISSING
        return self._decode("get_or_compute", unwrap(data)[0])

    async def _acquire(self, key: str) -> str | None:
        token = uuid.uuid4().hex
        ok = await self._call(
            "get_or_compute",
            self.redis.set,
            self.keys.lock_key(key),
            token,
            nx=True,
            px=self.lock_lease_ms,
        )
        if ok is MISSING:
            return ""
        if not ok:
            return None
        lock = self.keys.lock_key(key)
        renewal = asyncio.get_running_loop().create_task(self._renew(lock, token))
        self._renewals[lock, token] = renewal
        return token

    async def _renew(self, lock: str, token: str) -> None:
        """Extend the lease every third of a lease while the lock is still ours."""
        try:
            while True:
                await asyncio.sleep(self.lock_lease_ms / 3000)
                ok = await self._call(
                    "get_or_compute", self._extend, keys=[lock], args=[token, self.lock_lease_ms]
                )
                if ok is MISSING or not ok:
                    return
        finally:
            self._renewals.pop((lock, token), None)

    async def _release_lock(self, key: str, token: str) -> None:
        if token:
            lock = self.keys.lock_key(key)
            task = self._renewals.pop((lock, token), None)
            if task is not None:
                task.cancel()
            await self._call("get_or_compute", self._release, keys=[lock], args=[token])

    async def _compute_and_store(
        self, key: str, loader: Callable[[], Awaitable[T]], ti: TypeChildren, px: int
    ) -> T:
        t0 = perf_counter()
        value = await loader()
        delta = perf_counter() - t0
        ti.compute.observe(delta)
        payload = wrap(self._encode(ti, value), delta, time.time() + px / 1000)
        await self._call("get_or_compute", self.redis.set, key, payload, px=px)
        return value

    # --- tags and versions ----------------------------------------------------------------

    async def set_with_tags(
        self,
        key: str,
        value: Any,
        tags: list[str] | tuple[str, ...],
        ttl: Seconds | None = None,
        *,
        tenant: str | None = None,
    ) -> bool:
        ti = self._i.classify(key)
        px = self._ttl_for(ti, ttl)
        tag_keys = self._tag_keys(key, tags, tenant)
        payload = self._encode(ti, value)

        async def run() -> None:
            pipe = self.redis.pipeline(transaction=False)
            pipe.set(key, payload, px=px)
            for tk in tag_keys:
                pipe.sadd(tk, key)
                pipe.pexpire(tk, px, nx=True)
                pipe.pexpire(tk, px, gt=True)
            await pipe.execute()

        ok = await self._call("set_with_tags", run) is not MISSING
        if ok and self._prune_due():
            for tk in tag_keys:
                await self._prune(tk)
        return ok

    async def prune_tag(self, tag: str, *, tenant: str | None = None) -> int:
        return await self._prune(self.keys.tag_key(tag, tenant))

    async def _prune(self, tag_key: str) -> int:
        async def run() -> int:
            dropped = 0
            cursor = 0
            while True:
                cursor, members = await self.redis.sscan(tag_key, cursor, count=200)
                if members:
                    pipe = self.redis.pipeline(transaction=False)
                    for m in members:
                        pipe.exists(m)
                    found = await pipe.execute()
                    gone = [m for m, n in zip(members, found, strict=True) if not n]
                    if gone:
                        dropped += int(await self.redis.srem(tag_key, *gone))
                        dropped -= await self._retag(tag_key, gone)
                if cursor == 0:
                    return dropped

        result = await self._call("set_with_tags", run)
        return 0 if result is MISSING else int(result)

    async def _retag(self, tag_key: str, removed: list[Any]) -> int:
        """See :meth:`exporter.client.CacheService._retag`."""
        pipe = self.redis.pipeline(transaction=False)
        for m in removed:
            pipe.pttl(m)
        ttls = await pipe.execute()
        back = [(m, ms) for m, ms in zip(removed, ttls, strict=True) if ms != -2]
        if not back:
            return 0
        pipe = self.redis.pipeline(transaction=False)
        pipe.sadd(tag_key, *(m for m, _ in back))
        longest = max(ms for _, ms in back)
        if longest > 0:
            pipe.pexpire(tag_key, longest, nx=True)
            pipe.pexpire(tag_key, longest, gt=True)
        await pipe.execute()
        return len(back)

    async def invalidate_tag(
        self, tag: str, *, tenant: str | None = None, broadcast: bool = True
    ) -> int:
        tag_key = self.keys.tag_key(tag, tenant)

        async def run() -> tuple[list[str], int]:
            members = [m.decode() for m in await self._pop_tag(keys=[tag_key])]
            removed = int(await self.redis.unlink(*members)) if members else 0
            return members, removed

        result = await self._call("invalidate_tag", run)
        if result is MISSING:
            return 0
        members, removed = result
        if broadcast:
            await self.broadcast_invalidation(keys=members, tags=[tag], tenant=tenant)
        return int(removed)

    async def versioned_key(self, type_name: str, *parts: str, tenant: str | None = None) -> str:
        base = self.key(type_name, *parts, tenant=tenant)
        found = await self._call("version", self.redis.get, self.keys.version_key(base))
        return self._versioned(base, found)

    async def bump_version(
        self, type_name: str, *parts: str, tenant: str | None = None
    ) -> int | None:
        base = self.key(type_name, *parts, tenant=tenant)
        px = 2 * self._ttl_for(self._i.classify(base), None)
        vkey = self.keys.version_key(base)

        async def run() -> int:
            pipe = self.redis.pipeline(transaction=False)
            pipe.incr(vkey)
            pipe.pexpire(vkey, px)
            return int((await pipe.execute())[0])

        result = await self._call("version", run)
        return None if result is MISSING else int(result)

    # --- pub/sub ----------------------------------------------------------------------------

    async def publish(self, channel: str, message: Any) -> int:
        payload = self._encode(self._i.other, message)
        result = await self._call("publish", self.redis.publish, channel, payload)
        return 0 if result is MISSING else int(result)

    async def subscribe(
        self, channel: str, handler: Callable[[Any], Any], *, wait: float | None = 2.0
    ) -> AsyncSubscription:
        """Run ``handler(message)`` (sync or async) for each message in a listener task."""
        if self.is_cluster:
            raise CacheConfigError(
                "subscribe: redis.asyncio's RedisCluster has no pub/sub; "
                "subscribe through a redis.asyncio.Redis client of one node"
            )
        sub = AsyncSubscription(self, channel, handler)
        sub.start()
        if wait:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sub.ready.wait(), wait)
        return sub

    async def broadcast_invalidation(
        self,
        *,
        keys: list[str] | tuple[str, ...] = (),
        tags: list[str] | tuple[str, ...] = (),
        tenant: str | None = None,
    ) -> int:
        return await self.publish(
            INVALIDATION_CHANNEL, self._invalidation_message(list(keys), list(tags), tenant)
        )

    async def on_invalidate(
        self, handler: Callable[[dict[str, Any]], Any], *, wait: float | None = 2.0
    ) -> AsyncSubscription:
        async def filtered(message: Any) -> None:
            if isinstance(message, dict) and message.get("origin") != self.instance_id:
                result = handler(message)
                if asyncio.iscoroutine(result):
                    await result

        return await self.subscribe(INVALIDATION_CHANNEL, filtered, wait=wait)
