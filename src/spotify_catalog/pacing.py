"""Client-side pacing: requests spaced to a configured rate across threads, so that a crawl meets few
429s (the ``rate`` setting)."""

from __future__ import annotations

import logging
import threading

from spotify_catalog.retries import Clock, Sleep

log = logging.getLogger(__name__)


class Pacer:
    """Spaces calls at least ``1/rate`` seconds apart across threads; ``rate`` 0 disables it."""

    def __init__(self, rate: float, *, clock: Clock, sleep: Sleep) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next = float("-inf")
        self.waited = 0.0
        """Total seconds callers were held back (for logs and benchmarks)."""

    def acquire(self) -> None:
        """Wait for this caller's slot; slots are handed out in call order."""
        if self.interval <= 0:
            return
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
            delay = slot - now
            self.waited += delay
        if delay > 0:
            log.debug("pacer: waiting %.2f s (rate %.2f/s)", delay, 1 / self.interval)
            self._sleep(delay)
