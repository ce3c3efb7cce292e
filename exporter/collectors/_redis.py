"""Helpers the background collectors share: clients per database, key classification."""

from __future__ import annotations

import logging
import threading
from typing import Any

import redis
import redis.sentinel
from redis._parsers.hiredis import NOT_ENOUGH_DATA, _HiredisParser
from redis._parsers.resp2 import _RESP2Parser
from redis._parsers.socket import SocketBuffer
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.utils import HIREDIS_AVAILABLE

from exporter.collectors.health import (
    Backoff,
    CollectorHealth,
    RepeatFilter,
    failure_reason,
)
from exporter.redis_urls import is_sentinel_url, parse_sentinel_url
from exporter.slo import SLO

log = logging.getLogger(__name__)

#: per-call socket timeout of the background collectors' clients (seconds)
DEFAULT_SOCKET_TIMEOUT = 5.0


#: the largest bulk string read, and the most bulk bytes of one reply, nested arrays
#: included (a real INFO ALL is tens of kB; past this the reply is refused unread,
#: before it can fill memory)
MAX_INFO_BYTES = 32 * 1024 * 1024
#: the longest array read (INFO is one bulk string; this bounds PING and the like)
MAX_ARRAY_ITEMS = 1024
#: the most elements of one reply, nested arrays included (1024 arrays of 1024 used to
#: pass the per-array bound; SENTINEL MASTERS of 64 masters is about 3,000)
MAX_REPLY_ITEMS = 1 << 17
#: the longest line read (a status, an error, a length header)
MAX_LINE_BYTES = 64 * 1024


class ReplyTooLarge(redis.InvalidResponse):
    """A reply larger than the collector reads (error class ``parse``)."""


class CappedParser(_RESP2Parser):
    """redis-py's RESP2 parser with bounds: a line (status, error, length header) over
    :data:`MAX_LINE_BYTES`, a bulk string over :data:`MAX_INFO_BYTES`, an array over
    :data:`MAX_ARRAY_ITEMS`, or a reply whose elements (nested arrays included) add up
    to more than :data:`MAX_INFO_BYTES` bytes or :data:`MAX_REPLY_ITEMS` elements is
    refused before the body that would cross the bound is read (the connection is
    then dropped, unread bytes and all), so no reply can fill memory.  The INFO
    collector reads through it, and so does every Sentinel connection the
    collectors open (a Sentinel's ``SENTINEL MASTERS`` answer used to be read whole:
    200 MiB from a hostile Sentinel took 400 MiB)."""

    _depth = 0
    _bytes_left = 0
    _items_left = 0

    def _read_response(self, disable_decoding: bool = False) -> Any:
        buffer = self._buffer
        if buffer is None:  # not connected: let redis-py say so
            return super()._read_response(disable_decoding=disable_decoding)  # type: ignore[no-untyped-call]
        if self._depth == 0:  # a new reply: a new budget
            self._bytes_left, self._items_left = MAX_INFO_BYTES, MAX_REPLY_ITEMS
        start = buffer.get_pos()
        raw = _bounded_line(buffer)
        if raw[:1] in (b"$", b"*"):
            bulk = raw[:1] == b"$"
            limit = MAX_INFO_BYTES if bulk else MAX_ARRAY_ITEMS
            try:
                size = int(raw[1:])
            except ValueError:
                raise redis.InvalidResponse("Protocol Error: bad length") from None
            if size > limit:
                raise ReplyTooLarge(f"reply of {size} (over {limit}) refused")
            if bulk:
                self._bytes_left -= max(size, 0)
            else:
                self._items_left -= max(size, 0)
            if self._bytes_left < 0 or self._items_left < 0:
                raise ReplyTooLarge(
                    f"reply over {MAX_INFO_BYTES} bytes or {MAX_REPLY_ITEMS} elements refused"
                )
        buffer.rewind(start)  # the whole line is buffered now: the base reads it again
        self._depth += 1
        try:
            return super()._read_response(disable_decoding=disable_decoding)  # type: ignore[no-untyped-call]
        finally:
            self._depth -= 1


def _bounded_line(buffer: SocketBuffer) -> bytes:
    """``SocketBuffer.readline`` that gives up past :data:`MAX_LINE_BYTES`."""
    data = buffer._buffer.readline()
    while not data.endswith(b"\r\n"):
        if len(data) > MAX_LINE_BYTES:
            raise ReplyTooLarge(f"line over {MAX_LINE_BYTES} bytes refused")
        buffer._read_from_socket()
        data += buffer._buffer.readline()
    return data[:-2]


#: the most bytes of one reply the background workers read (a SCAN batch of 100 keys
#: and a MEMORY USAGE are a few kB); past it the reply is refused and the connection
#: dropped.  Bytes bound elements too: hiredis builds each element as it arrives.
MAX_WORKER_REPLY_BYTES = 4 * 1024 * 1024


class _CountingReader:
    """A ``hiredis.Reader`` that refuses a reply once more than ``limit`` bytes were fed
    without completing it (the count starts over at each complete reply)."""

    __slots__ = ("_fed", "_limit", "_reader")

    def __init__(self, reader: Any, limit: int) -> None:
        self._reader = reader
        self._limit = limit
        self._fed = 0

    def feed(self, data: Any, offset: int = 0, length: int | None = None) -> None:
        if length is None:
            self._reader.feed(data, offset)
            self._fed += len(data) - offset
        else:
            self._reader.feed(data, offset, length)
            self._fed += length

    def gets(self, *args: Any) -> Any:
        reply = self._reader.gets(*args)
        if reply is not NOT_ENOUGH_DATA:  # the marker redis-py gives hiredis.Reader
            self._fed = 0
        elif self._fed > self._limit:
            raise ReplyTooLarge(f"reply over {self._limit} bytes refused")
        return reply

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reader, name)


class WorkerParser(_HiredisParser):
    """redis-py's hiredis parser (fast: the sampler parses every SCAN and MEMORY USAGE
    reply) with a bound of :data:`MAX_WORKER_REPLY_BYTES` per reply: a hostile server
    (a /scrape target is any allowed host) answered SCAN with 300 MiB and the sampler
    took 900 MiB."""

    def on_connect(self, connection: Any, **kwargs: Any) -> None:
        super().on_connect(connection, **kwargs)  # type: ignore[no-untyped-call]
        self._reader = _CountingReader(self._reader, MAX_WORKER_REPLY_BYTES)  # type: ignore[assignment]


def _bounded_replies(pool: redis.ConnectionPool) -> redis.ConnectionPool:
    """``pool``, its future connections reading through a bounded parser (RESP2; RESP3
    keeps redis-py's, as the INFO collector does)."""
    options = pool.connection_kwargs
    if str(options.get("protocol") or 2) == "2":
        options["parser_class"] = WorkerParser if HIREDIS_AVAILABLE else CappedParser
    return pool


def connection_pool(
    url: str,
    redis_kwargs: dict[str, Any] | None = None,
    *,
    db: int | None = None,
    timeout: float = DEFAULT_SOCKET_TIMEOUT,
) -> redis.ConnectionPool:
    """A pool for ``url``, optionally on another database than the URL names.

    ``ConnectionPool.from_url`` lets the URL win over keyword arguments, so a
    different ``db`` has to be set on a copy of the parsed connection options.
    """
    kwargs: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 0),  # the collectors' threads retry on their own schedule
        **(redis_kwargs or {}),
    }
    if is_sentinel_url(url):
        return _bounded_replies(sentinel_pool(url, kwargs, db=db))
    pool = redis.ConnectionPool.from_url(url, **kwargs)
    if db is None or db == pool.connection_kwargs.get("db", 0):
        return _bounded_replies(pool)
    options = {**pool.connection_kwargs, "db": db}
    connection_class = pool.connection_class
    pool.disconnect()
    return _bounded_replies(redis.ConnectionPool(connection_class=connection_class, **options))


class _Sentinels(redis.sentinel.Sentinel):
    """redis-py's ``Sentinel``, except that a Sentinel whose answer cannot be read (too
    large, not what Sentinel sends: redis-py raises ``KeyError`` or ``ValueError``
    parsing it) is skipped like an unreachable one, so one broken Sentinel does not
    hide the master the others name."""

    def discover_master(self, service_name: str) -> tuple[str, int]:
        failed: list[str] = []
        for number, sentinel in enumerate(self.sentinels):
            try:
                state = sentinel.sentinel_masters().get(service_name)  # type: ignore[no-untyped-call]
                usable = bool(state) and self.check_master_state(state, service_name)  # type: ignore[no-untyped-call]
                address = (state["ip"], int(state["port"])) if usable else None
            except (redis.RedisError, KeyError, ValueError, TypeError, AttributeError) as exc:
                failed.append(type(exc).__name__)  # the class only: no address, no reply
                continue
            if address is not None:  # asked first from now on, as redis-py does
                self.sentinels[0], self.sentinels[number] = sentinel, self.sentinels[0]
                forced = getattr(self, "_force_master_ip", None)
                return (forced if forced is not None else address[0]), address[1]
        why = f" ({', '.join(failed)})" if failed else ""
        raise redis.sentinel.MasterNotFoundError(f"No master found for {service_name!r}{why}")


def sentinel_pool(
    url: str, kwargs: dict[str, Any], *, db: int | None = None
) -> redis.sentinel.SentinelConnectionPool:
    """A pool whose every new connection asks the Sentinels for the current master, so
    a failover is followed at the next connection (Sentinel drops the clients of a
    demoted master, so that is the next command).  ``kwargs`` are the master's
    connection options; the Sentinels get the same timeouts and their own credentials."""
    target = parse_sentinel_url(url)
    timeouts = {k: kwargs[k] for k in ("socket_timeout", "socket_connect_timeout") if k in kwargs}
    manager = _Sentinels(  # type: ignore[no-untyped-call]
        list(target.sentinels),
        # no retries: redis-py's default (3, with backoff) made one connect through a
        # frozen Sentinel take 20 timeouts, 5 s at a 0.25 s timeout
        sentinel_kwargs={**timeouts, "retry": Retry(NoBackoff(), 0), **target.sentinel_kwargs()},
    )
    for peer in manager.sentinels:  # a Sentinel's answers are read in bounded memory
        peer.connection_pool.connection_kwargs["parser_class"] = CappedParser
    options = {**target.master_kwargs(), **kwargs}
    if db is not None:
        options["db"] = db
    return redis.sentinel.SentinelConnectionPool(  # type: ignore[no-untyped-call]
        target.service, manager, **options
    )


def client(pool: redis.ConnectionPool) -> Any:
    """A sync client on ``pool`` (typed Any: redis-py's stubs mix sync and async returns)."""
    return redis.Redis(connection_pool=pool)


def url_db(pool: redis.ConnectionPool) -> int:
    """The database a pool's connections select."""
    return int(pool.connection_kwargs.get("db", 0) or 0)


class KeyClassifier:
    """``slo.type_of_key`` with a bounded memo by prefix: the sampler classifies
    hundreds of thousands of keys per cycle, but they share a handful of prefixes."""

    MAX_MEMO = 4096

    def __init__(self, slo: SLO) -> None:
        self._slo = slo
        self._memo: dict[bytes | str, str] = {}

    def __call__(self, key: bytes | str) -> str:
        prefix: bytes | str
        sep: bytes | str
        if isinstance(key, bytes):
            prefix, sep, _ = key.partition(b":")
        else:
            prefix, sep, _ = key.partition(":")
        if not sep:
            return self._slo.type_of_key(key)
        found = self._memo.get(prefix)
        if found is None:
            found = self._slo.type_of_key(key)
            if len(self._memo) < self.MAX_MEMO:
                self._memo[prefix] = found
        return found


#: how long stop() waits for a background thread after closing its connections
STOP_TIMEOUT = 10.0


class BackgroundThread:
    """Start, supervision and stop of one daemon thread running ``_loop``, shared by
    the sampler and the eviction tracker.

    ``_loop`` returns only when stopped; whatever it raises ends that attempt, not
    the thread: the supervisor records the failure in :attr:`health`, logs one line
    per failure class and streak (:class:`RepeatFilter`), waits a capped
    exponential :class:`Backoff` (through ``_pause``, which a worker may use to
    keep answering scrapes) and runs ``_loop`` again.  ``stop`` closes the
    connections *before* joining, so a call blocked on a Redis that answers slowly
    (or a byte at a time) fails at once instead of holding shutdown; the join is
    bounded all the same."""

    #: what the logs and the thread name call this worker ("keyspace sampler", ...)
    label = "background collector"
    #: what a failed attempt is called in the log line ("cycle failed", ...)
    failure = "failed"
    instance: str
    health: CollectorHealth
    _stop: threading.Event
    _thread: threading.Thread | None
    _repeats: RepeatFilter

    def _loop(self) -> None:
        raise NotImplementedError

    def _disconnect(self) -> None:
        raise NotImplementedError

    def _interrupt(self) -> None:
        """Wake the loop from any wait of its own (beyond ``_stop``)."""

    def _pause(self, seconds: float) -> None:
        """Wait between attempts (``stop`` ends the wait)."""
        self._stop.wait(seconds)

    def _new_backoff(self) -> Backoff:
        return Backoff()

    def _supervise(self) -> None:
        backoff = self._new_backoff()
        while not self._stop.is_set():
            error: Exception
            try:
                self._loop()
            except Exception as exc:  # anything: the worker must outlive every attempt
                error = exc
            else:
                error = RuntimeError(f"{self.label} loop returned while running")
            if self._stop.is_set():
                return
            healthy_for = self.health.healthy_for()
            cls = self.health.failed(error)
            self.health.restarted()
            delay = backoff.delay(healthy_for)
            # Redis' own reply text or the class, no traceback: never a socket error's
            # text (it can carry addresses from the URL)
            reason = failure_reason(error)
            level = self._repeats.level(f"{cls}:{reason}")
            log.log(
                level,
                "%s for %s: %s (%s), restarting in %.1fs",
                self.label,
                self.instance,
                self.failure,
                reason,
                delay,
            )
            try:
                self._pause(delay)
            except Exception as exc:  # the wait itself must not end the thread either
                self.health.failed(exc)
                self._stop.wait(delay)

    def _succeeded(self) -> None:
        """An attempt did its work: health up, the log's streak of failures over."""
        self.health.ok()
        self._repeats.reset()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._supervise,
            name=f"{self.label.replace(' ', '-')}[{self.instance}]",
            daemon=True,
        )
        self._thread.start()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the thread and close its connections."""
        self._stop.set()
        self._interrupt()
        self._disconnect()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("%s for %s did not stop in time", self.label, self.instance)
            self._thread = None
        self._disconnect()
