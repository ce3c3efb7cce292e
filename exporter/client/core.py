"""What the sync and asyncio services share: options, keys, policy, metrics, breaker.

Everything here is pure (no I/O), so :mod:`exporter.client.sync` and
:mod:`exporter.client.aio` only add the Redis calls.
"""

from __future__ import annotations

import logging
import math
import random
import uuid
from itertools import compress, repeat
from operator import is_
from typing import Any, cast

from prometheus_client import CollectorRegistry

from exporter.client.breaker import CircuitBreaker
from exporter.client.errors import CacheConfigError
from exporter.client.families import client_metrics
from exporter.client.instrumentation import BREAKER_ERRORS, Instruments, TypeChildren, error_class
from exporter.client.keys import KeyBuilder, KeyPattern
from exporter.client.policy import Seconds, missing_ttl, ttl_ms
from exporter.client.recorder import Recorder
from exporter.client.serialization import (
    HEADER_SIZE,
    MAGIC,
    JsonSerializer,
    Serializer,
    encode,
    plain,
    unwrap,
)
from exporter.slo import SLO, load_slo

log = logging.getLogger("exporter.client")

#: the ready-made cross-instance invalidation channel
INVALIDATION_CHANNEL = "cache-slo-exporter:invalidation"
#: redis-py options ``from_url`` sets unless the caller does (fail fast, fail open)
DEFAULT_SOCKET_TIMEOUT = 0.25
DEFAULT_CONNECT_TIMEOUT = 0.25
#: names ``from_url`` passes to the service; every other option goes to redis-py
SERVICE_OPTIONS = frozenset(
    {
        "slo",
        "registry",
        "serializer",
        "other_ttl",
        "breaker_threshold",
        "breaker_cooldown",
        "lock_lease",
        "lock_max_wait",
        "lock_wait",
        "xfetch_beta",
        "prune_every",
        "legacy_values",
    }
)


#: XFetch's draws come from the client's own generator: a library must not move the
#: application's global random sequence (seeded simulations, property-test engines)
_xfetch_rng = random.Random()


class _Missing:
    """Sentinel: nothing usable was read (miss, failure or undecodable value)."""


MISSING: Any = _Missing()


def xfetch_due(delta: float, expiry: float, now: float, beta: float) -> bool:
    """Probabilistic early expiration (Vattani et al.): refresh before ``expiry`` with a
    probability that grows as it nears and with the value's compute time ``delta``."""
    if delta <= 0 or expiry <= 0 or beta <= 0:
        return False
    return now - delta * beta * math.log(1.0 - _xfetch_rng.random()) >= expiry


def call_deadline(client: Any) -> float | None:
    """The longest one Redis call of the service may take: the client's connect
    timeout plus its socket timeout, the worst case of a sync call that must connect
    first (redis-py uses the socket timeout when no connect timeout is set).  ``None``
    (no deadline) when the client has no socket timeout: it would wait forever too.

    On the asyncio side every Redis call runs within this deadline
    (``backend.Deadlines``): redis.asyncio's pool connects under a lock, so without one
    concurrent callers of a frozen or unreachable Redis queue behind each other's
    connects, one timeout after another."""
    getter = getattr(client, "get_connection_kwargs", None)
    kwargs = getter() if callable(getter) else {}
    socket_timeout = kwargs.get("socket_timeout")
    if not isinstance(socket_timeout, int | float) or socket_timeout <= 0:
        return None
    connect = kwargs.get("socket_connect_timeout")
    if not isinstance(connect, int | float) or connect <= 0:
        connect = socket_timeout
    return float(connect + socket_timeout)


def split_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    service = {k: v for k, v in options.items() if k in SERVICE_OPTIONS}
    redis_opts = {k: v for k, v in options.items() if k not in SERVICE_OPTIONS}
    redis_opts.setdefault("socket_timeout", DEFAULT_SOCKET_TIMEOUT)
    redis_opts.setdefault("socket_connect_timeout", DEFAULT_CONNECT_TIMEOUT)
    if redis_opts.get("decode_responses"):
        raise CacheConfigError(
            "decode_responses: expected False (values are bytes the serializer decodes)"
        )
    return service, redis_opts


class ServiceCore:
    """Options, keys, TTL policy, serializer, bound metrics and the breaker.

    Stampede options of ``get_or_compute`` (see :mod:`exporter.client.stampede`):
    ``lock_lease`` (seconds, default 5) is the lease of the cross-process lock, renewed
    by its live holder every third of a lease, so it only bounds how long a crashed
    holder blocks the key; ``lock_max_wait`` (seconds, default 30) is the longest a
    caller waits on another process's lock before computing itself anyway
    (``lock_wait`` is accepted as its former name).

    ``legacy_values`` (default True) reads values in the format clients before
    2026-11-29 wrote from ``get_or_compute`` (a binary header before the payload); set
    it False once the migration window is over (docs/architecture.md): such a value is
    then undecodable data, a counted miss that ``get_or_compute`` overwrites.
    """

    def __init__(
        self,
        client: Any,
        *,
        slo: SLO | None = None,
        registry: CollectorRegistry | None = None,
        serializer: Serializer | None = None,
        other_ttl: Seconds | None = None,
        breaker_threshold: int = 5,
        breaker_cooldown: float = 1.0,
        lock_lease: float = 5.0,
        lock_max_wait: float = 30.0,
        lock_wait: float | None = None,
        xfetch_beta: float = 1.0,
        prune_every: int = 64,
        legacy_values: bool = True,
    ) -> None:
        encoder = getattr(client, "get_encoder", None)
        if encoder is not None and getattr(encoder(), "decode_responses", False):
            raise CacheConfigError(
                "client: expected a redis client with decode_responses=False "
                "(values are bytes the serializer decodes)"
            )
        self.redis = client
        self.slo = slo if slo is not None else load_slo()
        self.keys = KeyBuilder(self.slo)
        self.serializer: Serializer = (
            serializer if serializer is not None else cast(Serializer, JsonSerializer())
        )
        #: JSON refuses every legacy value (its header starts with a NUL byte), so reads
        #: may try it first; a lenient serializer must see the header stripped first
        self._json = type(cast(object, self.serializer)) is JsonSerializer
        #: read legacy get_or_compute values (header + payload) during the migration
        self.legacy_values = bool(legacy_values)
        #: (payload, delta, expiry) of what a GET returned: legacy header stripped or not
        self._unwrap = unwrap if self.legacy_values else plain
        self.metrics = client_metrics(registry)
        self._i = Instruments(self.metrics, self.slo, ttl_ms(other_ttl, "other_ttl"))
        self.breaker = CircuitBreaker(breaker_threshold, breaker_cooldown)
        self._rec = Recorder(
            self._i, self.metrics.orphans, self.breaker, immediate=self.metrics.immediate
        )
        self.metrics.track(self._rec)
        #: how a successful Redis call records its outcome: one call (see the recorder;
        #: mget calls ``self._rec.record_mget``)
        self._record = self._rec.record
        lease = ttl_ms(lock_lease, "lock_lease")
        assert lease is not None
        self.lock_lease_ms = lease
        #: how long a caller waits for another process's computation at most: it waits
        #: while that holder's lock lives (a live holder renews its lease, however slow
        #: its loader), computes at once when the lock goes without a value (the holder
        #: crashed: its lease ran out), and computes anyway after this many seconds (fail
        #: open: a wedged holder must not hang requests).  ``lock_wait`` is its old name.
        max_wait = lock_max_wait if lock_wait is None else lock_wait
        if (
            isinstance(max_wait, bool)
            or not isinstance(max_wait, int | float)
            or not math.isfinite(max_wait)
            or max_wait <= 0
        ):
            name = "lock_max_wait" if lock_wait is None else "lock_wait"
            raise CacheConfigError(f"{name}: expected seconds > 0, got {max_wait!r}")
        self.lock_max_wait = float(max_wait)
        self.xfetch_beta = float(xfetch_beta)
        if prune_every < 1:
            raise CacheConfigError(f"prune_every: expected an int >= 1, got {prune_every!r}")
        self.prune_every = prune_every
        self._tag_writes = 0
        self.instance_id = uuid.uuid4().hex
        #: a cluster client's seed nodes (see :meth:`_reseed_cluster`); empty otherwise
        nodes_manager = getattr(client, "nodes_manager", None)
        self._cluster_seeds: dict[str, Any] = (
            dict(nodes_manager.startup_nodes) if nodes_manager is not None else {}
        )
        #: re-reads a cluster after a failure (the service's backend sets its own)
        self._rediscovery: Any = None
        #: running listeners (Subscription / AsyncSubscription); close() stops them
        self.subscriptions: set[Any] = set()

    # --- keys (pure) ----------------------------------------------------------------

    def key(self, type_name: str, *parts: str, tenant: str | None = None) -> str:
        """ADR key of ``type_name``: ``prefix[:tenant]:part...``, every segment escaped."""
        return self.keys.key(type_name, *parts, tenant=tenant)

    def pattern(self, type_name: str, *parts: str, tenant: str | None = None) -> KeyPattern:
        """Glob for the keys under ``key(type_name, *parts, ..., tenant=tenant)``."""
        return self.keys.pattern(type_name, *parts, tenant=tenant)

    def type_of(self, key: str) -> str:
        return self._i.classify(key).name

    # --- policy and serialization ---------------------------------------------------

    def _ttl_for(self, ti: TypeChildren, ttl: Seconds | None) -> int:
        px = ttl_ms(ttl) if ttl is not None else ti.ttl_ms
        if px is None:
            raise missing_ttl(ti.name, self.slo.source)
        return px

    def _encode(self, ti: TypeChildren, value: Any) -> bytes:
        return encode(self.serializer, value, ti.name)

    def _decode(self, op: str, data: bytes) -> Any:
        try:
            return self.serializer.loads(data)
        except Exception as exc:
            self._i.errors[op]["serialization"].inc()
            log.debug("cache %s: undecodable value (%s)", op, type(exc).__name__)
            return MISSING

    def _mget_decode(
        self, op: str, keys: list[str], raw: list[bytes | None]
    ) -> tuple[list[Any], list[str] | None]:
        """Decode an MGET reply: the values (``None`` for a miss) and the keys that
        missed (absent or undecodable), ``None`` when none did.  Per-key work stays in
        C where it can: plain JSON values are one list comprehension of ``json.loads``."""
        loads = self.serializer.loads
        out: list[Any] | None = None
        nones = 1  # unknown yet
        if self._json:
            # JSON text never holds a raw NUL byte and every legacy header starts with
            # one: only a batch without any can be decoded without looking for headers
            try:
                blob = b"".join(cast(list[bytes], raw))  # fails fast if a key was missing
                nones = 0
            except TypeError:
                blob = b"".join(filter(None, raw))
            if b"\x00" not in blob:
                try:
                    out = [None if d is None else loads(d) for d in raw]
                except Exception:
                    out = None
        elif not self.legacy_values or not any(d is not None and d[:4] == MAGIC for d in raw):
            try:
                out = [None if d is None else loads(d) for d in raw]
            except Exception:
                out = None
        failed_at: list[int] = []
        if out is None:
            out = []
            append = out.append
            for i, d in enumerate(raw):
                if d is None:
                    append(None)
                    continue
                if d[:4] == MAGIC and len(d) >= HEADER_SIZE and self.legacy_values:
                    d = d[HEADER_SIZE:]  # a legacy get_or_compute value: skip its header
                try:
                    append(loads(d))
                except Exception as exc:
                    failed_at.append(i)
                    append(None)
                    log.debug("cache %s: undecodable value (%s)", op, type(exc).__name__)
            if failed_at:
                self._i.errors[op]["serialization"].inc(len(failed_at))
        if not failed_at and (nones == 0 or None not in raw):
            return out, None
        missed = list(compress(keys, map(is_, raw, repeat(None))))
        missed.extend(keys[i] for i in failed_at)
        return out, missed

    def _count_misses(self, missed: Any) -> None:
        """A read that failed or was skipped (Redis unavailable): a miss of each key's
        type (``missed``: one key or a list of keys), counted now: failures are rare.
        Never raises, whatever the key (bytes keys reach Redis, so they must not
        break fail-open here)."""
        keys = missed if type(missed) is list else [missed]
        for ti, n in self._i.type_counts(keys).items():
            ti.misses.inc(n)

    @staticmethod
    def _amount(amount: int) -> int:
        """An increment Redis accepts; anything else is the caller's bug, not a Redis
        error to fail open on (``None`` would read as "Redis down")."""
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise CacheConfigError(f"amount: expected an int, got {amount!r}")
        return amount

    @staticmethod
    def _check_values(values: tuple[Any, ...]) -> None:
        if not values:
            raise CacheConfigError("values: expected at least one value to push")

    def _check_batch(self, pattern: KeyPattern | str, batch: int) -> KeyPattern:
        """The checked pattern; a batch Redis would refuse is the caller's bug (it must
        not be swallowed as a Redis error, deleting nothing)."""
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise CacheConfigError(f"batch: expected an int >= 1, got {batch!r}")
        return self.keys.check_pattern(pattern)

    # --- failure accounting ---------------------------------------------------------

    def _target(self) -> str:
        """``host:port`` of the Redis behind this service, for logs (never credentials)."""
        pool = getattr(self.redis, "connection_pool", None)
        kwargs = getattr(pool, "connection_kwargs", None) or {}
        if "path" in kwargs:
            return f"unix:{kwargs['path']}"
        if "host" in kwargs:
            return f"{kwargs['host']}:{kwargs.get('port', 6379)}"
        return "the Redis cluster" if getattr(self, "is_cluster", False) else "Redis"

    def _failed(
        self, op: str, exc: BaseException, seconds: float | None = None, missed: Any = None
    ) -> None:
        """Record a failed Redis call, in one call: its latency (``seconds``, if it
        reached the network), its error class, a miss of each key it read
        (``missed``: a key or a list of keys) and the breaker; never raises."""
        if seconds is not None:
            self._i.latency[op].observe(seconds)
        err = error_class(exc)
        self._i.errors[op][err].inc()
        if err in BREAKER_ERRORS:
            if self._cluster_seeds:
                self._reseed_cluster()
                self._rediscovery.kick()
            was_open = bool(self.breaker.open_until)
            self.breaker.failure()
            if not was_open and self.breaker.open_until:
                log.warning(
                    "cache circuit opened after %d failures (last: %s, %s) talking to %s; "
                    "reads fall through to the source, writes are dropped, probing again "
                    "in %gs",
                    self.breaker.failures,
                    err,
                    type(exc).__name__,
                    self._target(),
                    self.breaker.cooldown,
                )
        elif err == "response" and self.breaker.failures:
            self.breaker.success()  # Redis answered: it is reachable (closes a half-open probe)
        # class name only: messages of some errors could echo connection details
        log.debug("cache %s failed: %s (%s)", op, err, type(exc).__name__)
        if missed is not None:
            self._count_misses(missed)

    def _reseed_cluster(self) -> None:
        """Put back the seed nodes redis-py dropped.  redis-py removes every node that
        fails from its startup nodes; once all have failed (the whole cluster was
        down) it has nothing left to rediscover the cluster from and never recovers."""
        startup = self.redis.nodes_manager.startup_nodes
        for name, node in self._cluster_seeds.items():
            if name not in startup:
                startup[name] = node

    def _blocked(self, op: str, missed: Any = None) -> bool:
        """True (and counted, with a miss of each key it would have read: ``missed``)
        when the open breaker skips this call."""
        br = self.breaker
        if br.open_until and not br.allow():
            self._i.errors[op]["circuit_open"].inc()
            if missed is not None:
                self._count_misses(missed)
            return True
        return False

    # --- tags -----------------------------------------------------------------------

    def _tag_keys(
        self, key: str, tags: list[str] | tuple[str, ...], tenant: str | None
    ) -> list[str]:
        if isinstance(tags, str):
            raise CacheConfigError(f"tags: expected a list of tags, got the string {tags!r}")
        self.keys.check_tag_member(key, tenant)
        return [self.keys.tag_key(tag, tenant) for tag in tags]

    def _prune_due(self) -> bool:
        self._tag_writes += 1
        return self._tag_writes % self.prune_every == 0

    # --- versions -------------------------------------------------------------------

    def _versioned(self, base: str, found: Any) -> str:
        """``base`` at the version read from Redis (``None``: never bumped, 0).  When
        the read failed or the counter is not a number, a fresh one-off version: the
        caller gets a miss, never the entry of an old version (still live after a bump)."""
        if found is None:
            return self.keys.with_version(base, 0)
        if found is not MISSING:
            try:
                return self.keys.with_version(base, int(found))
            except ValueError:
                self._i.errors["version"]["serialization"].inc()
        return self.keys.with_version(base, f"u{uuid.uuid4().hex}")

    def _refresh_failed(self, ti: TypeChildren, exc: Exception) -> None:
        log.warning(
            "cache get_or_compute: early refresh of a %r value failed (%s); "
            "serving the cached value until it expires",
            ti.name,
            type(exc).__name__,
        )

    def _invalidation_message(self, keys: list[str], tags: list[str], tenant: str | None) -> Any:
        return {"origin": self.instance_id, "keys": keys, "tags": tags, "tenant": tenant}
