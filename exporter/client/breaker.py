"""Circuit breaker: stop calling a Redis that keeps failing, probe it, recover.

Closed until ``threshold`` consecutive connection/timeout failures; then open
for ``cooldown`` seconds (calls are skipped and counted as ``circuit_open``);
after the cooldown one call is let through as a probe (half-open): success
(including an error reply: Redis answered) closes the breaker, a
connection/timeout failure opens it for another cooldown.  The hot path reads
one attribute (``open_until``, 0.0 while closed) and takes no lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class CircuitBreaker:
    def __init__(
        self,
        threshold: int = 5,
        cooldown: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if threshold < 1:
            raise ValueError(f"breaker_threshold: expected an int >= 1, got {threshold!r}")
        if cooldown <= 0:
            raise ValueError(f"breaker_cooldown: expected seconds > 0, got {cooldown!r}")
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self.failures = 0
        #: monotonic time until which calls are skipped; 0.0 while closed
        self.open_until = 0.0

    @property
    def state(self) -> str:
        if not self.open_until:
            return "closed"
        return "half-open" if self._clock() >= self.open_until else "open"

    def allow(self) -> bool:
        """Called only while open: let one probe through per cooldown."""
        with self._lock:
            if not self.open_until:
                return True
            now = self._clock()
            if now < self.open_until:
                return False
            self.open_until = now + self.cooldown  # the probe's own window
            return True

    def success(self) -> None:
        with self._lock:
            self.failures = 0
            self.open_until = 0.0

    def failure(self) -> None:
        with self._lock:
            self.failures += 1
            if self.failures >= self.threshold:
                self.open_until = self._clock() + self.cooldown
