"""Client-side rate limiting for setup calls (creating a data set's objects), as client-go's
token bucket: at most ``qps`` calls per second on average, ``burst`` at once."""

from __future__ import annotations

import threading
import time


class TokenBucket:
    """Thread-safe: every worker of a parallel batch calls :meth:`take` before its request."""

    def __init__(self, qps: float, burst: int) -> None:
        if qps <= 0 or burst <= 0:
            raise ValueError(f"qps and burst must be > 0 (got {qps}, {burst})")
        self._qps = qps
        self._burst = burst
        self._tokens = float(burst)
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> None:
        """Block until a token is available, then spend it."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self._burst, self._tokens + (now - self._last) * self._qps)
            self._last = now
            self._tokens -= 1
            # A negative balance is this caller's place in the queue: it waits for its token
            # while holding no lock, so later callers queue behind it.
            wait = -self._tokens / self._qps if self._tokens < 0 else 0.0
        if wait:
            time.sleep(wait)
