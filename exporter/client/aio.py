"""``AsyncCacheService``: the ADR-004 cache interface over redis-py, instrumented.

Fail open: a Redis error or timeout never reaches the caller.  Reads return a
miss (``None``), ``get_or_compute`` computes from the source, writes are
dropped (``set`` returns ``False``, counters return ``None``); the error is
counted in ``cache_errors_total{layer,operation,error}`` and feeds the circuit
breaker; a failed read also counts as a miss of its key type.  Caller bugs (bad
keys, unserializable values, missing TTLs) raise.

Latency: ``cache_latency_seconds{operation}`` gets one observation per Redis
round trip (a ``get_or_compute`` hit is one; a miss adds the lock, its release,
the write and, while a slow loader runs, a lease renewal every third of a
lease), never including loader time, which goes to ``cache_compute_seconds``.
Each call records its outcome with one call: a success through the recorder
(:mod:`exporter.client.recorder`), a failure through ``_failed``.

Deadline: no call waits longer than ``self.deadline`` for Redis (the client's
connect timeout plus its socket timeout: :func:`exporter.client.core.call_deadline`;
a scan of any length, no longer per round trip); a call that reaches it fails open
as a ``timeout`` and feeds the breaker.  How each side keeps it (the event loop's
pool connects under a lock, so every call here runs in a ``with self._deadlines:``
block; threads rely on redis-py's socket timeouts, and the generator drops those
blocks) is in :mod:`exporter.client._async_backend`.

Cluster: a ``redis.asyncio.cluster.RedisCluster`` client is accepted.  Multi-key
operations are never atomic across hash slots: ``mget`` uses
``mget_nonatomic``, ``mset``/``set_with_tags``/``incr`` use non-transactional
pipelines (redis-py groups their commands per node), ``delete``/``UNLINK`` is
split per slot by redis-py, and every Lua script (lock release and renewal,
tag pop) touches exactly one key.  Tag sets, locks and version counters are
ordinary keys in their own slots.  redis-py drops each node that fails from its
startup nodes and, after a whole-cluster outage, could never rediscover the
cluster: the service puts its seed nodes back after every connection error, so
it recovers by itself.  Where a call's deadline can cut redis-py's re-read of the
cluster short (the event loop's side), ``backend.Rediscovery`` completes it in the
background after such an error, so a failed-over master is found on a loaded machine.

One source, two services: ``exporter/client/aio.py`` is written by hand and
``scripts/unasync.py`` generates ``exporter/client/sync.py`` from it.  What
differs by side (threads or the event loop, sleeping, lock-lease renewal,
single-flight, listeners, pub/sub on a cluster) is in
:mod:`exporter.client._async_backend`.
"""

from __future__ import annotations

import time
import uuid
import zlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from functools import partial
from time import perf_counter
from typing import Any, TypeVar

import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.sentinel

from exporter.client import _async_backend as backend
from exporter.client.core import (
    INVALIDATION_CHANNEL,
    MISSING,
    ServiceCore,
    call_deadline,
    split_options,
    xfetch_due,
)
from exporter.client.errors import CacheSerializationError
from exporter.client.instrumentation import TypeChildren
from exporter.client.keys import KeyPattern
from exporter.client.policy import Seconds
from exporter.client.serialization import decode_meta, encode_meta
from exporter.client.stampede import (
    EXTEND_SCRIPT,
    POLL_FIRST,
    POLL_MAX,
    POP_TAG_SCRIPT,
    RELEASE_SCRIPT,
)
from exporter.redis_urls import is_sentinel_url, parse_sentinel_url

T = TypeVar("T")


class _Sentinels(redis.asyncio.sentinel.Sentinel):
    """redis-py's ``Sentinel``, except that a Sentinel whose answer cannot be read
    (redis-py raises ``KeyError`` or ``ValueError`` parsing what no Sentinel sends, or
    it answers an error) is skipped like an unreachable one: redis-py asked the next
    Sentinel only after a connection error or a timeout, so one broken Sentinel hid
    the master the others name and every call failed open."""

    async def discover_master(self, service_name: str) -> tuple[str, int]:
        failed: list[str] = []
        for number, sentinel in enumerate(self.sentinels):
            try:
                state = (await sentinel.sentinel_masters()).get(service_name)  # type: ignore[no-untyped-call,unused-ignore]
                usable = bool(state) and self.check_master_state(state, service_name)  # type: ignore[no-untyped-call,unused-ignore]
                address = (state["ip"], int(state["port"])) if usable else None
            except (redis.RedisError, KeyError, ValueError, TypeError, AttributeError) as exc:
                failed.append(type(exc).__name__)  # the class only: no address, no reply
                continue
            if address is not None:  # asked first from now on, as redis-py does
                self.sentinels[0], self.sentinels[number] = sentinel, self.sentinels[0]
                forced = getattr(self, "_force_master_ip", None)
                return (forced if forced is not None else address[0]), address[1]
        why = f" ({', '.join(failed)})" if failed else ""
        raise redis.asyncio.sentinel.MasterNotFoundError(
            f"No master found for {service_name!r}{why}"
        )


class AsyncCacheService(ServiceCore):
    """Instrumented, tenant-isolated, fail-open cache over a ``redis.asyncio`` client."""

    def __init__(
        self, client: redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster, **options: Any
    ) -> None:
        super().__init__(client, **options)
        self.redis: Any = client
        any_client: Any = client
        self.is_cluster = isinstance(client, redis.asyncio.cluster.RedisCluster)
        self._deadlines = backend.Deadlines(call_deadline(client))
        self._rediscovery = backend.Rediscovery(client if self.is_cluster else None)
        self._flight = backend.AsyncSingleFlight()
        self._release = any_client.register_script(RELEASE_SCRIPT)
        self._extend = any_client.register_script(EXTEND_SCRIPT)
        self._renewer = backend.AsyncLeaseRenewer(self._renew_lease, self.lock_lease_ms / 3000)
        self._pop_tag = any_client.register_script(POP_TAG_SCRIPT)
        self._lat_get = self._i.latency["get"]
        self._lat_mget = self._i.latency["mget"]
        self._lat_goc = self._i.latency["get_or_compute"]
        self._mget = any_client.mget_nonatomic if self.is_cluster else any_client.mget
        #: get_or_compute's read of a value and its companion: redis-py's ``mget`` wrapper
        #: cost about 9 µs of CPU more per call than the command itself here; a cluster
        #: client needs it to route the (same-slot) keys
        self._mget_pair = (
            any_client.mget if self.is_cluster else partial(any_client.execute_command, "MGET")
        )
        self._loads = self.serializer.loads

    @property
    def deadline(self) -> float | None:
        """Seconds one Redis call may take at most (``None``: no socket timeout, no
        bound): see :func:`exporter.client.core.call_deadline`."""
        return self._deadlines.seconds

    @deadline.setter
    def deadline(self, seconds: float | None) -> None:
        self._deadlines.seconds = seconds

    @classmethod
    def from_url(cls, url: str, *, cluster: bool = False, **options: Any) -> AsyncCacheService:
        """Connect with short timeouts and no retries (the cache must not slow callers).

        A ``redis+sentinel://host:26379/service`` URL (:mod:`exporter.redis_urls`)
        connects to the master the Sentinels name, and every new connection asks them
        again, so the service follows a failover (Sentinel drops the demoted master's
        clients; calls fail soft until the new master answers).

        Service options (``slo``, ``registry``, ``serializer``, ``other_ttl``,
        ``breaker_*``, ``lock_*``, ``xfetch_beta``, ``prune_every``, ``legacy_values``) go to the
        service; everything else to redis-py.
        """
        service, redis_opts = split_options(options)
        redis_opts.setdefault("retry", backend.no_retries())
        client: Any
        if cluster:
            cluster_class: Any = redis.asyncio.cluster.RedisCluster
            client = cluster_class.from_url(url, **redis_opts)
        elif is_sentinel_url(url):
            target = parse_sentinel_url(url)
            timeouts = {
                k: v
                for k, v in redis_opts.items()
                if k in ("socket_timeout", "socket_connect_timeout")
            }
            sentinel_class: Any = _Sentinels
            sentinels = sentinel_class(
                list(target.sentinels),
                # no retries: with redis-py's default (3, with backoff) a get() through
                # a frozen Sentinel took 12 s against its 0.5 s budget
                sentinel_kwargs={
                    **timeouts,
                    "retry": backend.no_retries(),
                    **target.sentinel_kwargs(),
                },
            )
            client = sentinels.master_for(
                target.service, **{**target.master_kwargs(), **redis_opts}
            )
        else:
            client = redis.asyncio.Redis.from_url(url, **redis_opts)
        return cls(client, **service)

    async def aclose(self) -> None:
        """Stop every listener and lock-lease renewal, then close the client."""
        for sub in list(self.subscriptions):
            await sub.stop()
        await self._renewer.stop()
        await self._rediscovery.stop()
        self._rec.flush()
        await self.redis.aclose()
        # through Sentinel: the clients of the Sentinels themselves
        pool = getattr(self.redis, "connection_pool", None)  # a RedisCluster has none
        manager = getattr(pool, "sentinel_manager", None)
        for sentinel in getattr(manager, "sentinels", ()):
            await sentinel.aclose()

    # --- plumbing -------------------------------------------------------------------

    async def _call(
        self, op: str, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any
    ) -> T | Any:
        """Run one Redis call (a command, a pipeline, or a few in a row) within the
        deadline, with breaker, latency and error accounting; MISSING on failure."""
        if self.breaker.open_until and self._blocked(op):
            return MISSING
        latency = self._i.latency[op]
        t0 = perf_counter()
        try:
            with self._deadlines:
                result = await fn(*args, **kwargs)
        except Exception as exc:
            self._failed(op, exc, perf_counter() - t0)
            return MISSING
        self._record((latency, perf_counter() - t0, None, None))
        return result

    async def _call_steps(self, op: str, fn: Callable[[], Awaitable[T]]) -> T | Any:
        """:meth:`_call` for a scan of any length: ``fn`` puts each of its round trips
        within the deadline itself."""
        if self.breaker.open_until and self._blocked(op):
            return MISSING
        latency = self._i.latency[op]
        t0 = perf_counter()
        try:
            result = await fn()
        except Exception as exc:
            self._failed(op, exc, perf_counter() - t0)
            return MISSING
        self._record((latency, perf_counter() - t0, None, None))
        return result

    # --- reads ----------------------------------------------------------------------

    async def get(self, key: str) -> Any:
        """The value at ``key``, or ``None`` on a miss (or when Redis is unavailable)."""
        if self.breaker.open_until and self._blocked("get", key):
            return None
        t0 = perf_counter()
        try:
            with self._deadlines:
                data = await self.redis.get(key)
        except Exception as exc:
            self._failed("get", exc, perf_counter() - t0, key)
            return None
        seconds = perf_counter() - t0
        # the hit or miss is counted (and the key classified) later, in a batch: see
        # exporter.client.recorder for why the hot path only queues one event:
        # (latency child, seconds, key looked up, key if it missed)
        if data is None:
            self._record((self._lat_get, seconds, key, key))
            return None
        if not data or data[0]:  # not a legacy value (those start with NUL)
            try:
                value = self._loads(data)
            except Exception:  # undecodable: decoded (and counted) again below
                pass
            else:
                self._record((self._lat_get, seconds, key, None))
                return value
        value = self._decode("get", self._unwrap(data)[0])
        if value is MISSING:
            self._record((self._lat_get, seconds, key, key))
            return None
        self._record((self._lat_get, seconds, key, None))
        return value

    async def mget(self, keys: Iterable[str]) -> list[Any]:
        """Values for ``keys`` in order (``None`` for misses); counts each key."""
        keys = list(keys)
        if not keys:
            return []
        if self.breaker.open_until and self._blocked("mget", keys):
            return [None] * len(keys)
        t0 = perf_counter()
        try:
            with self._deadlines:
                raw = await self._mget(keys)
        except Exception as exc:
            self._failed("mget", exc, perf_counter() - t0, keys)
            return [None] * len(keys)
        seconds = perf_counter() - t0
        out, missed = self._mget_decode("mget", keys, raw)
        self._rec.record_mget(self._lat_mget, seconds, keys, missed)  # counted later, as in get
        return out

    # --- writes ---------------------------------------------------------------------

    async def set(self, key: str, value: Any, ttl: Seconds | None = None) -> bool:
        """Store ``value`` with the key type's TTL (or ``ttl``); ``False`` if dropped."""
        ti = self._i.classify(key)
        px = self._ttl_for(ti, ttl)
        payload = self._encode(ti, value)
        return await self._call("set", self.redis.set, key, payload, px=px) is not MISSING

    async def mset(
        self, entries: Mapping[str, Any] | Iterable[tuple[str, Any]], ttl: Seconds | None = None
    ) -> bool:
        """Store several values, each with its own type's TTL (one pipeline, per-slot)."""
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
        """UNLINK ``keys``; the number removed (0 if Redis is unavailable)."""
        if not keys:
            return 0
        removed = await self._call("delete", self.redis.unlink, *keys)
        if broadcast:
            await self.broadcast_invalidation(keys=list(keys))
        return 0 if removed is MISSING else int(removed)

    async def delete_pattern(self, pattern: KeyPattern | str, batch: int = 500) -> int:
        """Delete keys matching a pattern built by :meth:`pattern` (SCAN + UNLINK in
        batches, never KEYS).  Raw patterns are accepted only if ``pattern()`` could
        have built them, so a tenant's pattern never reaches another tenant's keys."""
        checked = self._check_batch(pattern, batch)

        async def run() -> int:
            removed = 0
            chunk: list[Any] = []
            keys = self.redis.scan_iter(match=str(checked), count=batch)
            async for key in backend.bounded_iter(keys, self._deadlines):
                chunk.append(key)
                if len(chunk) >= batch:
                    with self._deadlines:
                        removed += int(await self.redis.unlink(*chunk))
                    chunk.clear()
            if chunk:
                with self._deadlines:
                    removed += int(await self.redis.unlink(*chunk))
            return removed

        result = await self._call_steps("delete_pattern", run)
        return 0 if result is MISSING else int(result)

    async def incr(self, key: str, amount: int = 1, ttl: Seconds | None = None) -> int | None:
        """Atomic increment; a new key gets its type's TTL.  ``None`` if Redis is unavailable."""
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
        """Push values (serialized) onto a list; a new list gets its type's TTL."""
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

    # --- get_or_compute -----------------------------------------------------------------

    async def get_or_compute(
        self, key: str, loader: Callable[[], Awaitable[T]], ttl: Seconds | None = None
    ) -> T:
        """Cached value of ``key``, or ``await loader()``'s result stored with the type's TTL.

        Stampede-safe (see :mod:`exporter.client.stampede`); if Redis is
        unavailable the loader runs and its result is returned uncached.
        """
        ti = self._i.classify(key)
        px = self._ttl_for(ti, ttl)
        value, due = await self._cached(key)
        if value is not MISSING:
            if due:
                return await self._refresh_early(key, loader, ti, px, value)
            return value  # type: ignore[no-any-return]
        return await self._flight.do(key, lambda: self._fill(key, loader, ti, px))

    async def _cached(self, key: str) -> tuple[Any, bool]:
        """get_or_compute's read: (value, whether XFetch wants it refreshed early), value
        ``MISSING`` on a miss or when Redis is unavailable; the hit or miss is queued with
        the latency, as in :meth:`get`.  One round trip: ``MGET key meta`` reads the value
        and its early-refresh metadata (the companion key shares the value's hash slot)."""
        if self.breaker.open_until and self._blocked("get_or_compute", key):
            return MISSING, False
        meta_key = self.keys.meta_key(key)
        t0 = perf_counter()
        try:
            with self._deadlines:
                if meta_key is None:
                    data, meta = await self.redis.get(key), None
                else:
                    data, meta = await self._mget_pair(key, meta_key)
        except Exception as exc:
            self._failed("get_or_compute", exc, perf_counter() - t0, key)
            return MISSING, False
        seconds = perf_counter() - t0
        if data is None:
            self._record((self._lat_goc, seconds, key, key))
            return MISSING, False
        payload, delta, expiry = self._unwrap(data)
        value = self._decode("get_or_compute", payload)
        self._record((self._lat_goc, seconds, key, key if value is MISSING else None))
        if value is MISSING:
            return MISSING, False
        if meta is None or delta:  # no companion, or a legacy value (its own header)
            return value, xfetch_due(delta, expiry, time.time(), self.xfetch_beta)
        delta, expiry, crc = decode_meta(meta)
        # the checksum only matters when a refresh is due: a value someone else wrote
        # over ours must not be refreshed on our metadata
        due = xfetch_due(delta, expiry, time.time(), self.xfetch_beta)
        return value, due and crc == zlib.crc32(data)

    async def _refresh_early(
        self, key: str, loader: Callable[[], Awaitable[T]], ti: TypeChildren, px: int, stale: Any
    ) -> T:
        """One caller (the lock holder) recomputes; everyone else keeps the current value."""
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
        """Leader of this process: take the Redis lock or wait for whoever holds it, as
        long as it holds it (its lease is renewed while it lives) and at most
        ``lock_max_wait``; a lock that disappears without a value is taken over."""
        deadline = time.monotonic() + self.lock_max_wait
        poll = POLL_FIRST
        while True:
            token = await self._acquire(key)
            if token is not None:
                try:
                    # someone may have filled it between our read and the lock
                    if token != "" and (found := await self._read_quiet(key)) is not MISSING:
                        return found  # type: ignore[no-any-return]
                    return await self._compute_and_store(key, loader, ti, px)
                finally:
                    await self._release_lock(key, token)
            # another process computes: wait for its value or its lock to go
            await backend.sleep(poll)
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
        return self._decode("get_or_compute", self._unwrap(data)[0])

    async def _acquire(self, key: str) -> str | None:
        """Lock token if we hold the lock, ``""`` if Redis is unavailable (compute
        without a lock: fail open), ``None`` if another process holds it."""
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
        self._renewer.hold(self.keys.lock_key(key), token)
        return token

    async def _renew_lease(self, lock: str, token: str) -> bool:
        """Extend the lease while the lock is still ours (the renewer's call, every
        third of a lease); False once it is not, or Redis is unavailable."""
        ok = await self._call(
            "get_or_compute", self._extend, keys=[lock], args=[token, self.lock_lease_ms]
        )
        return ok is not MISSING and bool(ok)

    async def _release_lock(self, key: str, token: str) -> None:
        if token:
            lock = self.keys.lock_key(key)
            self._renewer.release(lock, token)
            await self._call("get_or_compute", self._release, keys=[lock], args=[token])

    async def _compute_and_store(
        self, key: str, loader: Callable[[], Awaitable[T]], ti: TypeChildren, px: int
    ) -> T:
        t0 = perf_counter()
        value = await loader()
        delta = perf_counter() - t0
        ti.compute.observe(delta)
        payload = self._encode(ti, value)
        meta_key = self.keys.meta_key(key)
        if meta_key is None:
            await self._call("get_or_compute", self.redis.set, key, payload, px=px)
            return value
        meta = encode_meta(payload, delta, time.time() + px / 1000)

        async def store() -> None:
            # the value exactly as serialized; its metadata beside it, same TTL
            pipe = self.redis.pipeline(transaction=False)
            pipe.set(key, payload, px=px)
            pipe.set(meta_key, meta, px=px)
            await pipe.execute()

        await self._call("get_or_compute", store)
        return value

    # --- tags and versions --------------------------------------------------------------

    async def set_with_tags(
        self,
        key: str,
        value: Any,
        tags: list[str] | tuple[str, ...],
        ttl: Seconds | None = None,
        *,
        tenant: str | None = None,
    ) -> bool:
        """Store ``value`` and record ``key`` under each tag (tenant tags hold only that
        tenant's keys).  Tag sets expire no earlier than their longest-lived member."""
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
        """Drop members of a tag whose keys have expired; the number dropped."""
        return await self._prune(self.keys.tag_key(tag, tenant))

    async def _prune(self, tag_key: str) -> int:
        async def run() -> int:
            dropped = 0
            cursor = 0
            while True:
                with self._deadlines:
                    cursor, members = await self.redis.sscan(tag_key, cursor, count=200)
                if members:
                    with self._deadlines:
                        gone = await self._gone(members)
                    if gone:
                        with self._deadlines:
                            dropped += int(await self.redis.srem(tag_key, *gone))
                            dropped -= await self._retag(tag_key, gone)
                if cursor == 0:
                    return dropped

        result = await self._call_steps("set_with_tags", run)
        return 0 if result is MISSING else int(result)

    async def _gone(self, members: list[Any]) -> list[Any]:
        """The members whose keys no longer exist."""
        pipe = self.redis.pipeline(transaction=False)
        for m in members:
            pipe.exists(m)
        found = await pipe.execute()
        return [m for m, n in zip(members, found, strict=True) if not n]

    async def _retag(self, tag_key: str, removed: list[Any]) -> int:
        """Put back removed members that exist again (written between prune's EXISTS
        and SREM), with a TTL on the tag set covering them; the number put back."""
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
        """Delete every key recorded under ``tag`` (of ``tenant``) and the tag set itself;
        broadcast the deleted keys on the invalidation channel.  Keys removed."""
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
        """``key(...)`` plus its current version; after :meth:`bump_version` readers
        use a new key and the old entry simply expires (no delete needed)."""
        base = self.key(type_name, *parts, tenant=tenant)
        found = await self._call("version", self.redis.get, self.keys.version_key(base))
        return self._versioned(base, found)

    async def bump_version(
        self, type_name: str, *parts: str, tenant: str | None = None
    ) -> int | None:
        """Move readers to a new version; the counter outlives two TTLs of the type."""
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

    # --- pub/sub --------------------------------------------------------------------------

    async def publish(self, channel: str, message: Any) -> int:
        """Publish a serialized message; receivers reached (0 if Redis is unavailable)."""
        payload = self._encode(self._i.other, message)
        result = await self._call(
            "publish", backend.publish, self.redis, self.is_cluster, channel, payload
        )
        return 0 if result is MISSING else int(result)

    async def subscribe(
        self, channel: str, handler: backend.Handler, *, wait: float | None = 2.0
    ) -> backend.AsyncSubscription:
        """Call ``handler(message)`` for each message on ``channel`` in a listener
        (:class:`exporter.client.pubsub.AsyncSubscription`) that reconnects by itself;
        waits up to ``wait`` s until subscribed.  See
        :mod:`exporter.client._async_backend` for the handler and for clusters."""
        backend.refuse_cluster_pubsub(self.is_cluster)
        sub = backend.AsyncSubscription(self, channel, handler)
        sub.start()
        if wait:
            await backend.wait_ready(sub, wait)
        return sub

    async def broadcast_invalidation(
        self,
        *,
        keys: list[str] | tuple[str, ...] = (),
        tags: list[str] | tuple[str, ...] = (),
        tenant: str | None = None,
    ) -> int:
        """Tell other instances to drop local state for these keys/tags."""
        return await self.publish(
            INVALIDATION_CHANNEL, self._invalidation_message(list(keys), list(tags), tenant)
        )

    async def on_invalidate(
        self, handler: backend.InvalidationHandler, *, wait: float | None = 2.0
    ) -> backend.AsyncSubscription:
        """Subscribe ``handler`` to other instances' invalidation broadcasts."""

        async def filtered(message: Any) -> None:
            if isinstance(message, dict) and message.get("origin") != self.instance_id:
                await backend.call_handler(handler, message)

        return await self.subscribe(INVALIDATION_CHANNEL, filtered, wait=wait)
