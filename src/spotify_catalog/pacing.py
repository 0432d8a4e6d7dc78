"""Client-side pacing: requests spaced to a configured rate across threads (:class:`Pacer`, the ``rate``
setting), and the gate every request of a client passes before it is sent (:class:`Gate`).

Spotify's rate limit counts an app's requests in a rolling 30 s window and answers ``429`` with a
``Retry-After`` once the window is full. The gate is what a 429 of that limiter closes: every worker of
the client waits on it until ``Retry-After``, so that the limiter sees one 429, not one per worker.
The 429 also teaches the gate the app's *pace*: how many requests the window admitted (what this
process sent in the 30 s before the refused request, plus what the other processes of the app reported
sending). From then on the gate lets at most that many requests of the app go out in any 30 s (and a
margin): the window is never filled past the limit again, and no wait is longer than the limit makes
it. The pace only goes down on a 429; after :data:`RAISE_AFTER` seconds without one in which the pace
held requests back it goes up by a twentieth, to find a limit that was raised.

With a :class:`SharedPace` (:mod:`spotify_catalog.pace_store`: the ledger's database), the processes
of one client id share the gate and the pace: each reports what it sent in the last 30 s and reads the
others' at most once every :data:`POLL` seconds (one round trip a second, not one a request), takes an
equal share of the pace, and waits while the app's window is full by their reports; a 429 in one
closes the gate of all of them; the pace learnt is the next run's from its first request. A process
takes more than its share only once the others have reported sending nothing for a whole window:
what another process reports is up to two reads old, and two processes that each took what the other's
last report left (two crawls started together) filled the window past the limit between their reads.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from spotify_catalog.errors import WaitTooLongError
from spotify_catalog.retries import Clock, Sleep, WallClock

log = logging.getLogger(__name__)

WINDOW = 30.0
"""Seconds of Spotify's rolling rate-limit window."""
MARGIN = 0.5
"""Seconds added to the window the gate keeps: a request arrives a little after it is sent."""
POLL = 1.0
"""Seconds between two reads of the shared pace."""
BORROW = 10
"""Requests of the pace left to each other process when a process takes more than its share (the others
have sent nothing for a whole window): what one of them may send before it has read what this one
sent."""
RAISE_AFTER = 600.0
"""Seconds without a 429, the pace holding requests back, after which the pace is raised."""
NO_RETRY_AFTER = 1.0
"""Seconds the gate stays closed after a 429 without a usable ``Retry-After`` (the pace learnt from it
holds the requests back until the window frees)."""


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


@dataclass(frozen=True)
class Shared:
    """What the processes of a client id share, as last read."""

    pace: int | None
    """Requests of the app its rate limit admits in 30 s (``None``: not learnt)."""
    closed_until: datetime | None
    """The gate of every process is closed until then (UTC)."""
    processes: int
    """Processes of the client id alive, this one included."""
    others_sent: int
    """What the other processes reported sending in their last 30 s."""
    changed_at: datetime | None = None
    """When a process last recorded the pace or the gate."""


class SharedPace(Protocol):
    """Where the processes of one client id share the gate and the pace."""

    def poll(self, sent: int) -> Shared:
        """Report what this process sent in the last 30 s; what the processes share now."""

    def record(self, pace: int | None, closed_until: datetime | None) -> datetime | None:
        """A pace learnt, or the gate closed until ``closed_until``, for every process; when it was
        recorded (``None``: it could not be)."""


def lowered(before: int | None, admitted: int) -> int | None:
    """The pace after a 429, from the pace ``before`` and what the window ``admitted`` by the count:
    what was admitted, but never below half the pace before (a window filled by requests of other
    programs says little of the limit) and at least one less than before."""
    if admitted < 1:
        return before
    if before is None:
        return admitted
    return max(before // 2, min(before - 1, admitted), 1)


@dataclass
class _Event:
    """The 429s of requests sent before the gate they closed opens again: one event."""

    until: float
    first_sent: float
    before: int | None


class Gate:
    """Waits of every request of a client on the rate limit: closed by a 429 until its
    ``Retry-After``, and the pace learnt from it; thread-safe. ``check`` runs after each wait (the
    client raises ``Stopped`` in it when cancelled); a gate closed for more than ``max_wait`` seconds
    raises :class:`~spotify_catalog.errors.WaitTooLongError` without sending anything."""

    def __init__(
        self,
        *,
        clock: Clock,
        sleep: Sleep,
        wall_clock: WallClock,
        max_wait: float,
        shared: SharedPace | None = None,
        check: Callable[[], None] | None = None,
        pace: int | None = None,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._wall_clock = wall_clock
        self.max_wait = max_wait
        self._shared = shared
        self._check = check
        self._lock = threading.Lock()
        self._record_lock = threading.Lock()
        self._sent: deque[float] = deque()  # send times within the window and its margin, in order
        self._until = float("-inf")  # closed until (clock)
        self._event: _Event | None = None
        self.pace = pace
        """Requests the app's rate limit admits in 30 s, as learnt (``None``: not yet)."""
        self._processes = 1
        self._others = 0
        self._others_idle_since: float | None = None  # since when the others have reported sending nothing
        self._next_poll = float("-inf")
        self._polling = False
        self._polled = False
        self._changed_at: datetime | None = None  # the shared record last read or written
        self._quiet_since = clock()
        self._held = False  # the pace held a request back since the last 429 or raise
        self.events = 0
        """429 events (the 429s of one closing of the gate count once)."""
        self.waited = 0.0
        """Seconds requests waited on the gate, all threads together."""

    def __repr__(self) -> str:
        return f"Gate(pace={self.pace}, events={self.events})"

    @property
    def closed_until(self) -> float:
        """When the gate opens (``clock`` time; in the past when it is open)."""
        with self._lock:
            return self._until

    def enter(self) -> float:
        """Wait until the gate is open and the pace lets one more request go; the moment it goes (to
        give to :meth:`refused` or :meth:`unsent`). A wait that ``sleep`` reports done counts as done
        even if ``clock`` did not move (a test's sleep that records instead of sleeping)."""
        slept_to = float("-inf")
        while True:
            self._poll()
            with self._lock:
                now = max(self._clock(), slept_to)
                while self._sent and self._sent[0] <= now - WINDOW - MARGIN:
                    self._sent.popleft()
                ready = self._ready(now)
                if ready <= now:
                    self._sent.append(now)
                    raised = self._raise(now)
                    break
                if self._until - now > self.max_wait:
                    raise self._too_long(self._until - now)
                delay = ready - now
                self.waited += delay
            self._sleep(delay)
            slept_to = now + delay
            if self._check is not None:
                self._check()
        if raised:
            self._record()
        return now

    def _ready(self, now: float) -> float:
        """When the next request may go (caller holds the lock)."""
        ready = self._until
        pace = self.pace
        if pace is None:
            return ready
        share = max(1, pace // self._processes)
        idle_since = self._others_idle_since
        if self._processes > 1 and idle_since is not None and now - idle_since >= WINDOW + MARGIN:
            share = max(share, pace - BORROW * (self._processes - 1))  # the others leave theirs unused
        if len(self._sent) >= share:
            ready = max(ready, self._sent[-share] + WINDOW + MARGIN)
        if self._others and len(self._sent) + self._others >= pace:
            ready = max(ready, self._next_poll)  # full by the others' reports: read them again
        if ready > now and ready > self._until:
            self._held = True
        return ready

    def _raise(self, now: float) -> bool:
        """Raise the pace after a long quiet time in which it held requests back (lock held)."""
        if self.pace is None or not self._held or now - self._quiet_since < RAISE_AFTER:
            return False
        self.pace += max(1, self.pace // 20)
        self._quiet_since, self._held = now, False
        log.info("rate limit: no 429 for %.0f s: pace raised to %d requests per 30 s", RAISE_AFTER, self.pace)
        return True

    def unsent(self, sent_at: float) -> None:
        """A request let through at ``sent_at`` never reached the server."""
        with self._lock:
            self._forget(sent_at)

    def refused(self, sent_at: float, retry_after: float | None) -> None:
        """The request let through at ``sent_at`` was answered 429 by the rate limiter: the gate
        closes until ``retry_after`` seconds from now, and the pace is learnt from what the window
        admitted before it."""
        wait = retry_after if retry_after is not None and retry_after > 0 else NO_RETRY_AFTER
        with self._lock:
            now = self._clock()
            self._forget(sent_at)
            event = self._event
            if event is None or sent_at >= event.until:  # sent after the last event: a new one
                new = True
                self._until = max(self._until, now + wait)
                event = self._event = _Event(self._until, sent_at, self.pace)
                self.events += 1
            else:  # in flight when the gate closed: its Retry-After is the event's
                new = False
            event.first_sent = min(event.first_sent, sent_at)
            admitted = sum(1 for t in self._sent if event.first_sent - WINDOW < t <= event.first_sent)
            self.pace = lowered(event.before, admitted + self._others)
            self._quiet_since, self._held = now, False
            pace, closed = self.pace, self._until - now
        if new:
            log.warning(
                "rate limit: 429; every request waits %.1f s, then at most %s requests per 30 s",
                closed,
                pace if pace is not None else "?",
            )
        self._record()

    def closed_for(self, seconds: float) -> None:
        """Close the gate for ``seconds`` (a 429 asking for a wait longer than ``max_wait``): the
        other workers do not knock either."""
        with self._lock:
            now = self._clock()
            self._until = max(self._until, now + seconds)
        self._record()

    def _forget(self, sent_at: float) -> None:
        with contextlib.suppress(ValueError):  # already left the window
            self._sent.remove(sent_at)

    def _too_long(self, seconds: float) -> WaitTooLongError:
        return WaitTooLongError(
            f"Spotify's rate limit closed the way for {seconds:.0f} s, over the maximum wait of "
            f"{self.max_wait:.0f} s",
            retry_at=self._wall_clock() + timedelta(seconds=seconds),
        )

    # ------------------------------------------------------------------------ shared with others

    def _poll(self) -> None:
        """Read what the processes share, when due (one thread reads; the others go on)."""
        if self._shared is None:
            return
        with self._lock:
            now = self._clock()
            if self._polling or now < self._next_poll:
                return
            self._polling = True
            sent = len(self._sent)
        try:
            shared = self._shared.poll(sent)
        finally:
            with self._lock:
                self._polling = False
                self._next_poll = self._clock() + POLL
        self._apply(shared)

    def report(self) -> None:
        """Report what this process sent in its last 30 s now (a client that ends: the others count
        it until it has left the window)."""
        if self._shared is not None:
            with self._lock:
                sent = len(self._sent)
            self._shared.poll(sent)

    def _apply(self, shared: Shared) -> None:
        with self._lock:
            now = self._clock()
            first, self._polled = not self._polled, True
            if first and shared.processes > 1:  # others are there: read what they send before sending
                self._until = max(self._until, now + POLL)
            self._processes, self._others = max(1, shared.processes), shared.others_sent
            if shared.others_sent or shared.processes < 2:
                self._others_idle_since = None  # sending, or none there: what they send is theirs
            elif self._others_idle_since is None:
                self._others_idle_since = now
            newer = shared.changed_at is not None and (
                self._changed_at is None or shared.changed_at > self._changed_at
            )
            if newer:  # a read older than what this process recorded since says nothing new
                self._changed_at = shared.changed_at
                if shared.pace is not None and shared.pace != self.pace:
                    log.info("rate limit: pace %d requests per 30 s (shared)", shared.pace)
                    self.pace = shared.pace
            if shared.closed_until is not None:
                left = (shared.closed_until - self._wall_clock()).total_seconds()
                if now + left > self._until:
                    self._until = now + left
                    self._event = _Event(self._until, self._until, self.pace)  # theirs, not ours

    def _record(self) -> None:
        """Write the pace and the gate as they are now for the other processes (one write at a time,
        so that the last one written is the latest)."""
        if self._shared is None:
            return
        with self._record_lock:
            with self._lock:
                pace, closed = self.pace, self._until - self._clock()
            closed_until = self._wall_clock() + timedelta(seconds=closed) if closed > 0 else None
            changed_at = self._shared.record(pace, closed_until)
        if changed_at is not None:
            with self._lock:
                if self._changed_at is None or changed_at > self._changed_at:
                    self._changed_at = changed_at
