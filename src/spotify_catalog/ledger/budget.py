"""AccountBudget: a client's requests taken from its account's ledger, block by block, within the
daily budget and never to a bucket Spotify has parked; :func:`open_budget`, the command line's way."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from spotify_catalog.buckets import bucket_of
from spotify_catalog.errors import FULL, BucketParked, BudgetSpent, UsageError
from spotify_catalog.ledger.book import BLOCK, IN_FLIGHT, Grant, Ledger, Spent
from spotify_catalog.ledger.parking import Room
from spotify_catalog.ledger.schema import ledger_url
from spotify_catalog.ledger.window import Usage, frees_at, whole_second
from spotify_catalog.settings import Settings
from spotify_catalog.storage import state


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Block:
    """The block a process takes its requests from."""

    id: int
    size: int
    lease_end: datetime
    taken: int = 0
    last_at: datetime | None = None
    buckets: Counter[str] = field(default_factory=Counter)

    def spent(self) -> Spent:
        return Spent(self.id, self.taken, self.last_at, self.lease_end, dict(self.buckets))


class AccountBudget:
    """The requests of ``account`` in ``ledger``, at most ``limit`` in any rolling 24 h (``None``: only
    counted): a :class:`~spotify_catalog.client.SpotifyClient`'s ``budget``, which takes one request
    before each it sends. Thread-safe; :meth:`release` gives back what a block holds unsent (a crawl
    calls it when its run ends)."""

    def __init__(
        self,
        ledger: Ledger,
        account: str,
        *,
        limit: int | None = None,
        clock: Callable[[], datetime] = _utcnow,
        block: int = BLOCK,
    ) -> None:
        if limit is not None and limit < 1:
            raise UsageError("--daily-budget must be at least 1")
        self.ledger = ledger
        self.account = account
        self.limit = limit
        self._clock = clock
        self._size = block
        self._lock = threading.Lock()
        self._block: _Block | None = None
        self._left: int | None = None  # what the budget had left after the last reservation
        self._parked: Mapping[str, datetime] = {}  # as the last transaction with the ledger read it
        self._rooms: Mapping[str, Room] = {}
        self._forced = False  # parked buckets tried all the same, but those this process is refused
        self._refused: set[str] = set()

    def __repr__(self) -> str:
        return f"AccountBudget(account={self.account!r}, limit={self.limit}, ledger={self.ledger.where!r})"

    def take(self, path: str) -> None:
        """Count one request to ``path`` about to be sent; :class:`BudgetSpent` if none is left,
        :class:`BucketParked` if its bucket is parked."""
        bucket = bucket_of(path)
        now = self._clock()
        with self._lock:
            block = self._block
            if block is None or block.taken >= block.size or now + IN_FLIGHT > block.lease_end:
                block = self._reserve(now)
            until = self._heeded().get(bucket)
            if until is not None and now < until:
                raise BucketParked({bucket: until})
            full = None if self._forced else self._full_until(bucket, block, now)
            if full is not None:
                raise BucketParked({bucket: full}, why=FULL)
            block.taken += 1
            block.buckets[bucket] += 1
            block.last_at = now if block.last_at is None else max(block.last_at, now)

    def refused(self, path: str, retry_at: datetime) -> int:
        """Spotify answered a request to ``path`` with ``429 QUOTA_EXCEEDED`` until ``retry_at``: its
        bucket is parked in the ledger (the block held is closed first, so that what it sent is
        counted). Returns the bucket's learnt size."""
        bucket = bucket_of(path)
        now = self._clock()
        with self._lock:
            closing = self._block.spent() if self._block is not None else None
            self._block = None
            grant = self.ledger.park(self.account, bucket, until=retry_at, now=now, closing=closing)
            self._parked = grant.parked
            self._refused.add(bucket)
            return grant.used

    def parked(self) -> dict[str, datetime]:
        """The buckets parked when this process last reserved or was refused, and until when."""
        now = self._clock()
        with self._lock:
            return {bucket: until for bucket, until in self._heeded().items() if until > now}

    def force(self) -> None:
        """Send to the buckets the ledger has parked all the same (``crawl --force``); a bucket Spotify
        refuses again is parked for this process too."""
        with self._lock:
            self._forced = True

    def _full_until(self, bucket: str, block: _Block, now: datetime) -> datetime | None:
        """When ``bucket`` has room for one more request, if its learnt size is reached now (what the
        ledger counted when this process last reserved, and what it sent since); ``None``: it has."""
        room = self._rooms.get(bucket)
        if room is None:
            return None
        taken = block.buckets[bucket]
        rows = [*room.window, (whole_second(now + IN_FLIGHT), taken)] if taken else list(room.window)
        return frees_at(rows, room.size, self.ledger.window)

    def _heeded(self) -> Mapping[str, datetime]:
        if not self._forced:
            return self._parked
        return {bucket: until for bucket, until in self._parked.items() if bucket in self._refused}

    def give_back(self, path: str) -> None:
        """A request taken was not sent after all (it never reached the server)."""
        bucket = bucket_of(path)
        with self._lock:
            block = self._block
            if block is not None and block.buckets[bucket] > 0:
                block.buckets[bucket] -= 1
                block.taken -= 1

    def check(self) -> None:
        """Reserve a block now unless one is held: :class:`BudgetSpent` if the budget is used up (a
        crawl calls it before it starts)."""
        with self._lock:
            if self._block is None or self._block.taken >= self._block.size:
                self._reserve(self._clock())

    def left(self) -> int | None:
        """What the budget had left when this process last reserved, less what it sent since
        (``None``: no limit, or nothing reserved yet)."""
        with self._lock:
            if self._left is None:
                return None
            unsent = self._block.size - self._block.taken if self._block is not None else 0
            return self._left + unsent

    def release(self) -> None:
        """Close the block held: what it did not send is the account's again."""
        with self._lock:
            block, self._block = self._block, None
            if block is not None:
                self.ledger.close_block(block.spent())

    def usage(self) -> Usage:
        """The account's use now (what this process holds unsent counts as sent)."""
        return self.ledger.usage(self.account, now=self._clock(), limit=self.limit)

    def spent_message(self, used: int | None = None) -> str:
        """``daily budget of N requests of account A used up`` (and how many the window holds)."""
        text = f"{state.BUDGET_REASON} of {self.limit} requests of account {self.account} used up"
        return text if used is None else f"{text} ({used} in the last 24 h)"

    def _reserve(self, now: datetime) -> _Block:
        """A new block (the one held is closed in the same transaction), or :class:`BudgetSpent`."""
        closing = self._block.spent() if self._block is not None else None
        self._block = None
        grant: Grant = self.ledger.reserve(
            self.account, self._size, limit=self.limit, now=now, closing=closing
        )
        self._parked = grant.parked
        self._rooms = grant.rooms
        self._left = None if self.limit is None else max(0, self.limit - grant.used)
        if grant.block_id is None:
            raise BudgetSpent(self.spent_message(grant.used), retry_at=grant.frees_at)
        self._block = _Block(grant.block_id, grant.size, grant.lease_end)
        return self._block


@contextmanager
def open_budget(
    settings: Settings, *, limit: int | None = None, clock: Callable[[], datetime] = _utcnow
) -> Iterator[AccountBudget | None]:
    """The budget of the account ``settings`` name (``--account``, else the client id) in its ledger
    (``--ledger``, else :func:`default_url`); ``None`` when no account is known. The ledger is opened
    at the first request; what is unsent is given back at the end."""
    account = settings.account_name()
    if account is None:
        yield None
        return
    ledger = Ledger(ledger_url(settings), window=timedelta(seconds=settings.quota_window))
    budget = AccountBudget(ledger, account, limit=limit, clock=clock)
    try:
        yield budget
    finally:
        try:
            budget.release()
        finally:
            ledger.close()
