"""Evictions and expirations per key type, from keyspace notifications.

One daemon thread owns a raw RESP2 connection subscribed to
``__keyevent@*__:evicted`` and ``__keyevent@*__:expired`` (every database),
classifies each key with the SLO file's key types, and reconciles with
``INFO``'s ``evicted_keys``/``expired_keys`` through an
:class:`~exporter.collectors._ledger.EvictionLedger` (its docstring states the
invariants: counters never go down, per-type counts plus ``unattributed`` sum
to Redis' own counter, nothing is counted twice).

The race between a notification and the ``INFO`` that already counted its
event is closed with a barrier: Redis counts an eviction and publishes its
notification in the same step, so after reading ``INFO`` (time t1) the thread
sends ``PING`` on the subscribed connection; its reply is queued behind every
notification published before t1.  Once the reply is read, every event that
``INFO`` counted has either been received or will never come, so the rest of
the gap is ``unattributed``.  A barrier that does not come back within
``barrier_timeout`` drops the connection (counted as a reconnect).

``collect()`` asks the thread for a reconcile and waits at most
``collect_timeout`` for it; if Redis is down it serves the last counters.
Any exception ends one subscription, not the thread: the supervisor of
:class:`~exporter.collectors._redis.BackgroundThread` reconnects with capped
exponential backoff, answering reconciles (from ``INFO`` alone) while it waits,
and ``cache_exporter_collector_*{collector="evictions"}`` say it is failing and
why.  ``INFO`` is read as raw text through our own parser, so a reply without
``run_id`` or one that is not text is a parse failure, not a crash.
Should evictions outrun the thread (tens of thousands per second), Redis drops
the subscriber at its pubsub output-buffer limit; the thread reconnects and the
events it missed are counted as ``unattributed``, so the sums stay right.

Redis only publishes these events when ``notify-keyspace-events`` contains
``E`` (keyevent channels) and ``x``/``e`` (or ``A``).  With
``configure_notifications=True`` the tracker adds the missing flags with
``CONFIG SET`` after every (re)connect, keeping the user's own flags.  Managed
services often block ``CONFIG``: the operator then sets the parameter in the
provider's console (e.g. a parameter group); until then every eviction and
expiration is counted, but as ``type="unattributed"``.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import redis
from prometheus_client.core import Metric

from exporter.collectors._ledger import EvictionLedger
from exporter.collectors._redis import (
    BackgroundThread,
    KeyClassifier,
    client,
    connection_pool,
)
from exporter.collectors.health import (
    CollectorHealth,
    RepeatFilter,
    error_class,
    failure_reason,
)
from exporter.collectors.info_parser import parse_info
from exporter.metrics import (
    CACHE_EVICTIONS,
    COLLECTOR_EVICTIONS,
    EVICTION_REASONS,
    LAYER_REDIS,
    NOTIFICATION_LAG,
    NOTIFICATION_RECONNECTS,
    NOTIFICATIONS,
    REASON_EXPIRED,
    REASON_MAXMEMORY,
)
from exporter.slo import SLO

log = logging.getLogger(__name__)

#: keyevent channel suffix -> reason label, and the INFO stats field Redis counts it in
CHANNELS: dict[str, tuple[str, str]] = {
    "evicted": (REASON_MAXMEMORY, "evicted_keys"),
    "expired": (REASON_EXPIRED, "expired_keys"),
}
PATTERNS = tuple(f"__keyevent@*__:{event}" for event in CHANNELS)
#: notify-keyspace-events flags the subscription needs: keyevent, expired, evicted
REQUIRED_FLAGS = "Exe"

DEFAULT_RECONCILE_INTERVAL = 5.0
DEFAULT_COLLECT_TIMEOUT = 2.0
DEFAULT_BARRIER_TIMEOUT = 2.0
#: how long the thread blocks on the socket before looking at requests again
#: longest the subscriber sleeps in poll(); a scrape's request or stop() wakes it
#: at once through a socketpair, so this only bounds a TLS read buffered out of sight
POLL_SECONDS = 0.2


def merged_notify_flags(current: str) -> str:
    """``current`` plus whatever of ``Exe`` it lacks (``A`` already implies ``x`` and ``e``)."""
    covered = set(current) | (set("xe") if "A" in current else set())
    return current + "".join(flag for flag in REQUIRED_FLAGS if flag not in covered)


class _Dropped(Exception):
    """The subscription is unusable (barrier timed out, unexpected reply)."""

    def __init__(self, message: str, error_class: str = "parse") -> None:
        super().__init__(message)
        #: the error class health and logs report (see health.error_class)
        self.error_class = error_class


def _text(value: object) -> str:
    """A reply element as text; anything but a string is a reply Redis would not send."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    raise _Dropped(f"expected a string reply, got {type(value).__name__}")


def _element(reply: object, index: int) -> str:
    """Element ``index`` of an array reply, as text."""
    if not isinstance(reply, list) or len(reply) <= index:
        raise _Dropped("unexpected reply shape")
    return _text(reply[index])


def info_counters(server: object, stats: object) -> tuple[str, dict[str, int]]:
    """``run_id`` and the evicted/expired totals from raw ``INFO server``/``stats`` replies;
    ``_Dropped`` (class parse) when either is not text or lacks a valid value."""
    run_id = (parse_info(_text(server)).get("server", "run_id") or "").strip()
    if not run_id:
        raise _Dropped("INFO server has no run_id")
    counted = parse_info(_text(stats))
    totals: dict[str, int] = {}
    for reason, name in CHANNELS.values():
        raw = (counted.get("stats", name) or "").strip()
        if not raw.isdigit():
            raise _Dropped(f"INFO stats: {name} is not a count")
        totals[reason] = int(raw)
    return run_id, totals


class EvictionTracker(BackgroundThread):
    """``cache_evictions_total`` per key type and reason, reconciled with ``INFO``."""

    label = "eviction tracker"
    failure = "subscription lost"

    def __init__(
        self,
        redis_url: str,
        slo: SLO,
        *,
        instance: str,
        configure_notifications: bool = False,
        redis_kwargs: dict[str, Any] | None = None,
        reconcile_interval: float = DEFAULT_RECONCILE_INTERVAL,
        collect_timeout: float = DEFAULT_COLLECT_TIMEOUT,
        barrier_timeout: float = DEFAULT_BARRIER_TIMEOUT,
    ) -> None:
        self.instance = instance
        self.configure_notifications = configure_notifications
        self.reconcile_interval = reconcile_interval
        self.collect_timeout = collect_timeout
        self.barrier_timeout = barrier_timeout
        self._pool = connection_pool(redis_url, redis_kwargs)
        self._info = client(self._pool)
        # raw INFO text, read by our own parser (never raises on what a server sends)
        self._info.set_response_callback("INFO", lambda response, **_: response)
        self.health = CollectorHealth(COLLECTOR_EVICTIONS, instance)
        self._classify = KeyClassifier(slo)
        self._ledger = EvictionLedger(EVICTION_REASONS, slo.type_names)
        self._types = self._ledger.types
        # state shared with collect(), guarded by _cond
        self._cond = threading.Condition()
        self._counts: dict[str, dict[str, int]] | None = None
        self._notifications = dict.fromkeys(EVICTION_REASONS, 0)
        self._last_notification: float | None = None
        self._subscriptions = 0
        self._requested = 0
        self._served = 0
        #: the ticket prepare() asked for, and when (a stale one is not this scrape's)
        self._prepared: tuple[int, float] | None = None
        # thread-only state
        self._run_id: str | None = None  # the run our subscription is connected to
        self._conn: Any = None  # the subscription connection, for stop() to close
        self._stop = threading.Event()
        self._wake = threading.Event()
        # a byte on this pair wakes the subscriber's poll() when a scrape asks for a
        # reconcile, so collect() waits one round trip, not a polling interval
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._thread: threading.Thread | None = None
        self._repeats = RepeatFilter()

    # --- lifecycle -------------------------------------------------------------------

    def _interrupt(self) -> None:
        self._wake.set()
        self._poke()

    def _poke(self) -> None:
        with contextlib.suppress(OSError):  # already poked (buffer full) or closed
            self._wake_w.send(b"x")

    def _drain(self) -> None:
        with contextlib.suppress(OSError):  # BlockingIOError: nothing left
            while self._wake_r.recv(4096):
                pass

    def __del__(self) -> None:
        for sock in (getattr(self, "_wake_r", None), getattr(self, "_wake_w", None)):
            if sock is not None:
                sock.close()

    def _disconnect(self) -> None:
        conn = self._conn
        if conn is not None:
            conn.disconnect()
        self._pool.disconnect()

    @property
    def subscriptions(self) -> int:
        """Subscriptions established so far (reconnects are this minus one)."""
        return self._subscriptions

    @property
    def reconnects(self) -> int:
        return max(0, self._subscriptions - 1)

    def wait_until_subscribed(self, timeout: float, subscriptions: int = 1) -> bool:
        """Block until ``subscriptions`` subscriptions have been established."""
        with self._cond:
            return self._cond.wait_for(lambda: self._subscriptions >= subscriptions, timeout)

    def notifications(self) -> dict[str, int]:
        """Notifications received so far per reason."""
        with self._cond:
            return dict(self._notifications)

    def prepare(self) -> None:
        """Ask the thread to start the next scrape's reconcile now, so its round trips
        overlap the collectors that run before this one (``collect`` then waits for it)."""
        with self._cond:
            self._requested += 1
            self._prepared = (self._requested, time.monotonic())
        self._wake.set()
        self._poke()

    def reconcile(self, timeout: float | None = None) -> dict[str, dict[str, int]] | None:
        """Have the thread reconcile with INFO now (or the reconcile :meth:`prepare`
        started); the published counters (None: never read)."""
        with self._cond:
            prepared, self._prepared = self._prepared, None
            fresh = prepared is not None and time.monotonic() - prepared[1] < self.collect_timeout
            if prepared is not None and fresh:
                ticket = prepared[0]  # started by prepare() for this scrape: wait for it
            else:
                self._requested += 1
                ticket = self._requested
        if not fresh:  # prepare() woke the thread already
            self._wake.set()
            self._poke()
        alive = self._thread is not None and self._thread.is_alive()
        with self._cond:
            if alive:
                wait = self.collect_timeout if timeout is None else timeout
                self._cond.wait_for(lambda: self._served >= ticket, wait)
            return None if self._counts is None else {r: dict(c) for r, c in self._counts.items()}

    # --- the subscriber thread ---------------------------------------------------------

    def _loop(self) -> None:
        """One subscription until it fails; the supervisor restarts it with backoff,
        answering scrapes meanwhile (``_pause``)."""
        try:
            conn = self._subscribe()
            self._succeeded()
            self._serve(conn)
        finally:
            self._run_id = None
            if self._conn is not None:  # also one _subscribe() gave up on
                self._conn.disconnect()
                self._conn = None

    def _pause(self, seconds: float) -> None:
        self._idle(seconds)

    def _subscribe(self) -> Any:
        """A raw RESP2 connection: learn the run id, set flags if asked, PSUBSCRIBE."""
        options = {**self._pool.connection_kwargs, "protocol": 2}
        conn = self._conn = self._pool.connection_class(**options)
        if self._stop.is_set():
            raise _Dropped("stopping", "other")
        conn.connect()
        conn.send_command("INFO", "server")
        run_id = (parse_info(_text(conn.read_response())).get("server", "run_id") or "").strip()
        if not run_id:
            raise _Dropped("INFO server has no run_id")
        self._check_flags(conn)
        conn.send_command("PSUBSCRIBE", *PATTERNS)
        for _ in PATTERNS:
            if _element(conn.read_response(), 0) != "psubscribe":
                raise _Dropped("unexpected reply to PSUBSCRIBE")
        self._run_id = run_id
        with self._cond:
            self._subscriptions += 1
            self._cond.notify_all()
        return conn

    def _check_flags(self, conn: Any) -> None:
        try:
            conn.send_command("CONFIG", "GET", "notify-keyspace-events")
            reply = conn.read_response()
            current = _element(reply, 1) if isinstance(reply, list) and len(reply) > 1 else ""
            wanted = merged_notify_flags(current)
            if wanted == current:
                return
            if self.configure_notifications:
                conn.send_command("CONFIG", "SET", "notify-keyspace-events", wanted)
                conn.read_response()
                log.info("%s: notify-keyspace-events %r -> %r", self.instance, current, wanted)
                return
        except redis.ResponseError as exc:  # CONFIG blocked (managed Redis) or not permitted
            log.warning(
                "%s: cannot read/set notify-keyspace-events (%s); enable 'Exe' in the "
                "provider's console, until then evictions count as unattributed",
                self.instance,
                failure_reason(exc),
            )
            return
        log.warning(
            "%s: notify-keyspace-events lacks %r; evictions and expirations count as "
            "unattributed until it is set (serve --configure-notifications sets it, or "
            "CONFIG SET notify-keyspace-events Exe)",
            self.instance,
            REQUIRED_FLAGS,
        )

    def _serve(self, conn: Any) -> None:
        next_reconcile = time.monotonic()
        # poll(), not select(): no FD_SETSIZE limit in a process with many sockets
        poller = select.poll()
        sock_fd, wake_fd = conn._sock.fileno(), self._wake_r.fileno()
        poller.register(sock_fd, select.POLLIN)
        poller.register(wake_fd, select.POLLIN)
        while not self._stop.is_set():
            if conn.can_read(timeout=0):  # parser-buffered data first: poll cannot see it
                self._handle(conn.read_response())
            else:
                ready = {fd for fd, _ in poller.poll(POLL_SECONDS * 1000)}
                if wake_fd in ready:
                    self._drain()
                if sock_fd in ready:
                    self._handle(conn.read_response())
            if self._requested > self._served or time.monotonic() >= next_reconcile:
                self._reconcile(conn)
                next_reconcile = time.monotonic() + self.reconcile_interval

    def _idle(self, seconds: float) -> None:
        """Wait before reconnecting, still answering reconcile requests (no barrier)."""
        deadline = time.monotonic() + seconds
        while not self._stop.is_set():
            if self._requested > self._served:
                self._reconcile(None)  # never raises without a connection
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._wake.wait(remaining)
            self._wake.clear()

    def _handle(self, message: Any) -> None:
        if _element(message, 0) != "pmessage" or len(message) < 4:
            raise _Dropped("unexpected message on the subscription")
        event = _text(message[2]).rpartition(":")[2]
        reason = CHANNELS[event][0] if event in CHANNELS else None
        if reason is None or self._run_id is None:
            return
        kind = self._classify(message[3])
        self._ledger.notify(self._run_id, reason, kind)
        with self._cond:
            self._notifications[reason] += 1
            self._last_notification = time.time()

    def _reconcile(self, conn: Any) -> None:
        """INFO, then the PING barrier on the subscription (if it is on the same run)."""
        ticket = self._requested
        run_id = ""
        try:
            pipe = self._info.pipeline(transaction=False)
            pipe.execute_command("INFO", "server")
            pipe.execute_command("INFO", "stats")
            run_id, totals = info_counters(*pipe.execute())
        except Exception as exc:  # Redis down, or a reply that is not INFO: serve the last
            reason = failure_reason(exc)
            self.health.failed(exc)
            log.log(
                self._repeats.level(f"{error_class(exc)}:{reason}"),
                "eviction tracker for %s: INFO failed (%s)",
                self.instance,
                reason,
            )
        if run_id and conn is not None and run_id == self._run_id:
            self._barrier(conn)
        if run_id and conn is not None:
            self._succeeded()
        with self._cond:
            if run_id:
                self._ledger.reconcile(run_id, totals, complete=True)
                self._counts = self._ledger.snapshot()
            self._served = max(self._served, ticket)
            self._cond.notify_all()

    def _barrier(self, conn: Any) -> None:
        conn.send_command("PING")
        deadline = time.monotonic() + self.barrier_timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not conn.can_read(timeout=remaining):
                raise _Dropped("barrier PING not answered in time", "timeout")
            message = conn.read_response()
            if isinstance(message, list) and message and _text(message[0]) == "pong":
                return
            self._handle(message)

    # --- prometheus-client collector ---------------------------------------------------

    def describe(self) -> Iterator[Metric]:
        """The families ``collect`` yields, without touching Redis."""
        for spec in (CACHE_EVICTIONS, NOTIFICATIONS, NOTIFICATION_RECONNECTS, NOTIFICATION_LAG):
            yield spec.new_family()

    def collect(self) -> Iterator[Metric]:
        """Reconcile (bounded wait), then the counters; none before the first INFO read."""
        counts = self.reconcile()
        evictions = CACHE_EVICTIONS.new_family()
        if counts is not None:
            for reason in EVICTION_REASONS:
                for kind in self._types:
                    labels = CACHE_EVICTIONS.label_values(
                        layer=LAYER_REDIS, type=kind, reason=reason
                    )
                    evictions.add_metric(labels, counts[reason][kind])
        received = NOTIFICATIONS.new_family()
        reconnects = NOTIFICATION_RECONNECTS.new_family()
        lag = NOTIFICATION_LAG.new_family()
        with self._cond:
            notified: Mapping[str, int] = dict(self._notifications)
            last = self._last_notification
        for reason, count in notified.items():
            received.add_metric(
                NOTIFICATIONS.label_values(instance=self.instance, reason=reason), count
            )
        me = NOTIFICATION_RECONNECTS.label_values(instance=self.instance)
        reconnects.add_metric(me, self.reconnects)
        if last is not None:
            lag.add_metric(me, max(0.0, time.time() - last))
        yield from (evictions, received, reconnects, lag)
