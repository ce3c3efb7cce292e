"""Pub/sub listeners that survive Redis restarts: a thread (sync) or a task (asyncio).

A listener owns its own connection, reconnects with capped exponential
backoff after any error (counted as ``cache_errors_total{operation="subscribe"}``),
and sets ``ready`` whenever it is subscribed.  A handler that raises is
logged and the listener carries on: one bad message must not stop
invalidations.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from exporter.client.core import MISSING

if TYPE_CHECKING:
    from exporter.client.aio import AsyncCacheService
    from exporter.client.sync import CacheService

log = logging.getLogger("exporter.client.pubsub")

BACKOFF_FIRST = 0.05
BACKOFF_MAX = 1.0
POLL = 0.1


class Subscription:
    """A listener thread for one channel; :meth:`stop` ends it."""

    def __init__(self, service: CacheService, channel: str, handler: Callable[[Any], None]) -> None:
        self.service = service
        self.channel = channel
        self.handler = handler
        self.ready = threading.Event()
        self.reconnects = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"cache-subscribe-{channel}", daemon=True
        )

    def start(self) -> None:
        self.service.subscriptions.add(self)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        self.service.subscriptions.discard(self)

    def _deliver(self, data: bytes) -> None:
        value = self.service._decode("subscribe", data)
        if value is MISSING:
            return
        try:
            self.handler(value)
        except Exception:
            log.exception("subscribe handler for %r failed", self.channel)

    def _run(self) -> None:
        backoff = BACKOFF_FIRST
        while not self._stop.is_set():
            pubsub = None
            try:
                pubsub = self.service.redis.pubsub()
                pubsub.subscribe(self.channel)
                while not self._stop.is_set():
                    msg = pubsub.get_message(timeout=POLL)
                    if msg is None:
                        continue
                    if msg["type"] == "subscribe":
                        self.ready.set()
                        backoff = BACKOFF_FIRST
                    elif msg["type"] == "message":
                        self._deliver(msg["data"])
            except Exception as exc:
                self.ready.clear()
                if self._stop.is_set():
                    break
                self.service._failed("subscribe", exc)
                self.reconnects += 1
                self._stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
            finally:
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except Exception:
                        log.debug("closing pubsub failed", exc_info=True)


class AsyncSubscription:
    """A listener task for one channel; ``await stop()`` ends it."""

    def __init__(
        self, service: AsyncCacheService, channel: str, handler: Callable[[Any], Any]
    ) -> None:
        self.service = service
        self.channel = channel
        self.handler = handler
        self.ready = asyncio.Event()
        self.reconnects = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())
        self.service.subscriptions.add(self)

    async def stop(self) -> None:
        task, self._task = self._task, None
        self.service.subscriptions.discard(self)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _deliver(self, data: bytes) -> None:
        value = self.service._decode("subscribe", data)
        if value is MISSING:
            return
        try:
            result = self.handler(value)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("subscribe handler for %r failed", self.channel)

    async def _run(self) -> None:
        backoff = BACKOFF_FIRST
        while True:
            pubsub = None
            try:
                pubsub = self.service.redis.pubsub()
                await pubsub.subscribe(self.channel)
                while True:
                    msg = await pubsub.get_message(timeout=POLL)
                    if msg is None:
                        continue
                    if msg["type"] == "subscribe":
                        self.ready.set()
                        backoff = BACKOFF_FIRST
                    elif msg["type"] == "message":
                        await self._deliver(msg["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.ready.clear()
                self.service._failed("subscribe", exc)
                self.reconnects += 1
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
            finally:
                if pubsub is not None:
                    try:
                        await pubsub.aclose()
                    except Exception:
                        log.debug("closing pubsub failed", exc_info=True)
