"""A fake clock and sleep that many threads share (the rate limit's gate, a crawl's workers)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
"""What ``SharedTime.wall`` says at the clock's start (1000.0)."""


class SharedTime:
    """A fake clock for many threads: a sleep ends at the caller's last reading of the clock plus its
    length, and moves the clock there unless it is past it already; ``wall`` follows the clock.
    ``pause``: real seconds a sleep takes first, so that what other threads have in flight (an
    answer on its way) is done before the clock moves."""

    def __init__(self, pause: float = 0.0) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.pause = pause
        self._lock = threading.Lock()
        self._read = threading.local()

    def clock(self) -> float:
        with self._lock:
            self._read.at = self.now
            return self.now

    def wall(self) -> datetime:
        return T0 + timedelta(seconds=self.clock() - 1000.0)

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        if self.pause:
            time.sleep(self.pause)
        with self._lock:
            self.sleeps.append(seconds)
            wake = getattr(self._read, "at", self.now) + seconds
            self.now = max(self.now, wake)
