"""Helpers the background collectors share: clients per database, key classification."""

from __future__ import annotations

import logging
import threading
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from exporter.slo import SLO

log = logging.getLogger(__name__)

#: per-call socket timeout of the background collectors' clients (seconds)
DEFAULT_SOCKET_TIMEOUT = 5.0


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
    pool = redis.ConnectionPool.from_url(url, **kwargs)
    if db is None or db == pool.connection_kwargs.get("db", 0):
        return pool
    options = {**pool.connection_kwargs, "db": db}
    connection_class = pool.connection_class
    pool.disconnect()
    return redis.ConnectionPool(connection_class=connection_class, **options)


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


def failure_reason(exc: BaseException) -> str:
    """What to log about a failed call: the class, plus Redis' own words for an error
    *reply* (``NOPERM ...``, ``WRONGPASS ...``), which never echo a password.  Socket
    errors keep only their class: their text can carry addresses from the URL."""
    if isinstance(exc, redis.ResponseError | redis.AuthenticationError):
        text = " ".join(str(exc).split())[:200]
        return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return type(exc).__name__


class RepeatFilter:
    """Log a failure at WARNING when its reason is new, at DEBUG while it repeats, so a
    reconnect loop (an ACL refusing a channel) says why once instead of every few seconds."""

    def __init__(self) -> None:
        self._last: str | None = None

    def level(self, reason: str) -> int:
        repeated = reason == self._last
        self._last = reason
        return logging.DEBUG if repeated else logging.WARNING

    def reset(self) -> None:
        """A success ends the streak: the next failure is news again."""
        self._last = None


#: how long stop() waits for a background thread after closing its connections
STOP_TIMEOUT = 10.0


class BackgroundThread:
    """Start and stop of one daemon thread running ``_loop``, shared by the sampler and
    the eviction tracker.  ``stop`` closes the connections *before* joining, so a call
    blocked on a Redis that answers slowly (or a byte at a time) fails at once instead
    of holding shutdown; the join is bounded all the same."""

    #: what the logs and the thread name call this worker ("keyspace sampler", ...)
    label = "background collector"
    instance: str
    _stop: threading.Event
    _thread: threading.Thread | None

    def _loop(self) -> None:
        raise NotImplementedError

    def _disconnect(self) -> None:
        raise NotImplementedError

    def _interrupt(self) -> None:
        """Wake the loop from any wait of its own (beyond ``_stop``)."""

    def start(self) -> None:
        """Start the thread (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._loop, name=f"{self.label.replace(' ', '-')}[{self.instance}]", daemon=True
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
