"""A thread-safe token bucket: at most `rate` starts per second, bursts up to `burst`.

Provider rate limits are wall-clock limits, so this measures real (monotonic) time rather
than the simulation clock. `pause` stops every caller for a while, e.g. after a 429.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = max(1.0, burst if burst is not None else rate / 10)
        self._monotonic = monotonic
        self._sleep = sleep
        self._tokens = self.burst
        self._updated = monotonic()
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def _reserve(self) -> float:
        """Take a token, or return how long to wait before trying again."""
        with self._lock:
            now = self._monotonic()
            if now < self._paused_until:
                return self._paused_until - now
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            if self._tokens >= 1 - 1e-9:  # float rounding must not strand a whole token
                self._tokens = max(0.0, self._tokens - 1)
                return 0.0
            return max(1e-4, (1 - self._tokens) / self.rate)

    def acquire(self, stop: threading.Event | None = None) -> bool:
        """Block until a send may start; False (no token taken) once `stop` is set."""
        while True:
            if stop is not None and stop.is_set():
                return False
            wait = self._reserve()
            if wait <= 0:
                return True
            if stop is None:
                self._sleep(wait)
            else:
                stop.wait(wait)

    def pause(self, seconds: float) -> None:
        """Let no one start for `seconds` (the provider asked us to back off)."""
        with self._lock:
            until = self._monotonic() + seconds
            if until > self._paused_until:
                self._paused_until = until
                self._tokens = 0
