"""Bounded HTTP connections for ``serve``: idle and slow clients cannot starve a scrape.

uvicorn keeps a connection that never sends a request for ever, and accepts
connections until the process runs out of file descriptors; past that, every
accept fails (and logs), so ``/metrics`` stops answering.  Two bounds close that:

- **a request-head deadline**: a connection must send a complete request head
  within ``header_timeout`` seconds of connecting or of its last response
  (uvicorn's keep-alive timeout only starts after a response, and stops at the
  first byte of the next request: one byte a minute kept it open);
- **a connection cap below the file limit**: at most ``max_connections`` are
  open at once (never more than the soft ``RLIMIT_NOFILE`` less a reserve for
  Redis, PostgreSQL and log files).  A new connection over the cap closes the
  longest-idle connection that is not serving a request; only when every one
  is busy is the new one closed instead.  So a flood of idle sockets costs each
  of them its place, and a scraper's fresh connection still gets served.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections import OrderedDict
from dataclasses import dataclass, field

from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

#: connections accepted per turn of the event loop (also the listen backlog): asyncio
#: accepts a whole batch before the protocol of any sees it, so a batch can exceed the
#: cap by this many descriptors until they are closed
ACCEPT_BATCH = 32


def connection_cap(wanted: int, reserve: int) -> int:
    """``wanted``, lowered so that the cap, one accept batch and ``reserve`` other
    descriptors fit under this process's soft file-descriptor limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft - reserve - ACCEPT_BATCH))


@dataclass
class ConnectionLimits:
    """The bounds, and the connections they govern (shared by one server's protocols)."""

    max_connections: int
    header_timeout: float
    #: open connections not serving a request, oldest first
    idle: OrderedDict[BoundedH11Protocol, None] = field(default_factory=OrderedDict)
    open: set[BoundedH11Protocol] = field(default_factory=set)

    def protocol(self) -> type[BoundedH11Protocol]:
        """A protocol class bound to these limits, for ``uvicorn.run(http=...)``."""
        return type("LimitedH11Protocol", (BoundedH11Protocol,), {"limits": self})


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a request-head deadline and a connection cap."""

    limits: ConnectionLimits

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_timer: asyncio.TimerHandle | None = None
        self._admitted = self._admit()
        if not self._admitted:
            transport.abort()
            return
        super().connection_made(transport)
        self.limits.open.add(self)
        self._idle()

    def _admit(self) -> bool:
        limits = self.limits
        while len(limits.open) >= limits.max_connections:
            if not limits.idle:
                return False
            oldest, _ = limits.idle.popitem(last=False)
            oldest._close()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._admitted:
            return
        self._busy()
        self.limits.open.discard(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            self._busy()  # a request head arrived: its deadline is met

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._idle()

    def _idle(self) -> None:
        """No request in flight: the next head must come within the deadline."""
        self._cancel_timer()
        self.limits.idle[self] = None
        self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_late)

    def _busy(self) -> None:
        self._cancel_timer()
        self.limits.idle.pop(self, None)

    def _cancel_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            self._close()

    def _close(self) -> None:
        self._busy()
        self.limits.open.discard(self)  # its place is free now (connection_lost comes later)
        if not self.transport.is_closing():
            self.transport.abort()  # no goodbye owed to a client that sent no request
