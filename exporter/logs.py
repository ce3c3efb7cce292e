"""How ``serve`` logs: every line redacted, repeated lines rate-limited.

Both filters sit on the handlers (the root's and uvicorn's), not on loggers, so
they see every record whoever logged it: httpx, uvicorn, asyncio and our own.
A flood of one line (asyncio's "socket.accept() out of system resource" under a
connection flood, uvicorn's "Invalid HTTP request received." from a fuzzer)
becomes a few lines and a count, instead of filling the disk.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from exporter.redaction import RedactQueries, RedactSecrets

#: lines of one kind (logger, level, format string) let through per window
BURST = 5
WINDOW_SECONDS = 60.0
#: kinds remembered at once (a bound on the filter's own memory)
MAX_KINDS = 1024


class RateLimitRepeats(logging.Filter):
    """At most ``burst`` records of one kind per ``window`` seconds; the first one let
    through after a quiet spell says how many were dropped."""

    def __init__(
        self,
        burst: int = BURST,
        window: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.burst = burst
        self.window = window
        self.clock = clock
        #: kind -> [window start, lines let through in it, lines dropped since last shown]
        self._kinds: dict[tuple[str, int, str], list[float]] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        kind = (record.name, record.levelno, str(record.msg)[:200])
        now = self.clock()
        with self._lock:
            state = self._kinds.get(kind)
            if state is None:
                if len(self._kinds) >= MAX_KINDS:
                    self._kinds.clear()
                state = self._kinds[kind] = [now, 0, 0]
            if now - state[0] >= self.window:
                state[0], state[1] = now, 0
            if state[1] >= self.burst:
                state[2] += 1
                return False
            state[1] += 1
            dropped, state[2] = int(state[2]), 0
        if dropped:
            record.msg = f"{record.msg} [{dropped} more like this dropped]"
        return True


def _filters() -> list[logging.Filter]:
    return [RedactSecrets(), RateLimitRepeats()]


def protect_root_handlers() -> None:
    """Redact and rate-limit every handler of the root logger (call after
    ``logging.basicConfig``): records of every library end up there."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactSecrets) for f in handler.filters):
            for item in _filters():
                handler.addFilter(item)


def uvicorn_log_config(base: dict[str, Any]) -> dict[str, Any]:
    """uvicorn's logging config (``base``: its ``LOGGING_CONFIG``) with every handler
    redacting secrets, the error log rate-limiting repeats, and the access log masking
    URLs in request query strings (before its formatter reads them)."""
    config = copy.deepcopy(base)
    config.setdefault("filters", {}).update(
        {
            "redact": {"()": f"{RedactSecrets.__module__}.RedactSecrets"},
            "redact_queries": {"()": f"{RedactQueries.__module__}.RedactQueries"},
            "rate_limit": {"()": f"{__name__}.RateLimitRepeats"},
        }
    )
    for name, handler in config.get("handlers", {}).items():
        # one access line per request is the point of an access log: not rate-limited
        wanted = ["redact_queries", "redact"] if name == "access" else ["redact", "rate_limit"]
        handler["filters"] = [*handler.get("filters", []), *wanted]
    return config
