"""The ledger's transactions: an account's requests reserved in blocks across processes, blocks
closed with what was sent, and buckets parked by Spotify's ``429 QUOTA_EXCEEDED``.

Requests are reserved in blocks: a process takes up to :data:`BLOCK` at a time in one transaction that
holds the account's lock (its row ``FOR UPDATE`` on PostgreSQL and MariaDB, SQLite's write lock), then
counts them in memory as it sends them: a transaction per block, not per request. A block counts whole
while it is open (``requests`` is its size, ``ends_at`` the end of its lease: no request of it is sent
later than :data:`IN_FLIGHT` before that); when its process closes it, ``requests`` becomes what was
sent and ``ends_at`` the last request's time plus :data:`IN_FLIGHT`. A block counts until 24 h after
its ``ends_at``: never earlier than Spotify would, however its requests were spread. A process that
dies leaves its block open: it counts whole until its lease ends + 24 h, or until a process of the
same account on the same host finds the pid dead and closes it at that moment (still whole: what it
sent is not known). The transaction that reserves also reads the buckets parked
(:mod:`~spotify_catalog.ledger.parking`).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa

from spotify_catalog.errors import StorageError
from spotify_catalog.ledger import parking
from spotify_catalog.ledger.schema import accounts, block_buckets, blocks, open_ledger
from spotify_catalog.ledger.window import (
    SHARE,
    WINDOW,
    Usage,
    frees_at,
    grant_size,
    usage,
    whole_second,
    window,
)
from spotify_catalog.redaction import redact_url
from spotify_catalog.storage import state
from spotify_catalog.storage.engine import describe_error
from spotify_catalog.storage.write import in_transaction, insert_missing

log = logging.getLogger(__name__)

T = TypeVar("T")

BLOCK = 10
"""Most requests a process reserves at a time."""
LEASE = timedelta(minutes=10)
"""How long a reserved block may be used."""
IN_FLIGHT = timedelta(minutes=1)
"""How long after it is sent a request may still reach Spotify (and start counting there)."""
KEEP = timedelta(days=30)
"""Blocks that left the window longer ago than this are deleted."""


@dataclass
class Spent:
    """What a process sent of a block, to close it."""

    block_id: int
    requests: int
    last_at: datetime | None
    lease_end: datetime
    buckets: Mapping[str, int]


@dataclass(frozen=True)
class Grant:
    """A reservation: the block (``size`` 0: refused), and the account's use counting it."""

    block_id: int | None
    size: int
    lease_end: datetime
    used: int
    frees_at: datetime | None = None
    parked: Mapping[str, datetime] = field(default_factory=dict)
    """The account's buckets parked now, and until when."""
    rooms: Mapping[str, parking.Room] = field(default_factory=dict)
    """The account's buckets with a learnt size, and their requests in the window."""


class Ledger:
    """The ledger database at ``url``, opened (and created) on first use; :meth:`close` disposes of it."""

    def __init__(
        self,
        url: str,
        *,
        alive: Callable[[int], bool] = state._process_alive,
        window: timedelta = WINDOW,
    ) -> None:
        self.url = url
        self.window = window
        """The rolling window the requests count in (Spotify's 24 h; ``Settings.quota_window``)."""
        self.where = redact_url(url)
        self._alive = alive
        self._engine: sa.Engine | None = None
        self._accounts: set[str] = set()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Ledger({self.where!r})"

    def close(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None

    def _transaction(self, work: Callable[[sa.Connection], T]) -> T:
        try:
            return in_transaction(self._open(), work)
        except sa.exc.SQLAlchemyError as exc:
            raise StorageError(f"ledger {self.where}: {describe_error(exc)}") from None

    def _open(self) -> sa.Engine:
        with self._lock:
            if self._engine is None:
                self._engine = open_ledger(self.url, self.where)
            return self._engine

    def _account(self, account: str, now: datetime) -> None:
        """The account's row (what reservations lock), once per process; old blocks deleted."""
        if account in self._accounts:
            return

        def work(conn: sa.Connection) -> None:
            insert_missing(conn, accounts, [{"account": account, "created_at": now}])
            old = sa.select(blocks.c.id).where(blocks.c.account == account, blocks.c.ends_at < now - KEEP)
            ids = list(conn.execute(old).scalars())
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                conn.execute(block_buckets.delete().where(block_buckets.c.block_id.in_(chunk)))
                conn.execute(blocks.delete().where(blocks.c.id.in_(chunk)))

        self._transaction(work)
        self._accounts.add(account)

    def reserve(
        self, account: str, want: int, *, limit: int | None, now: datetime, closing: Spent | None = None
    ) -> Grant:
        """Close ``closing`` (a block used up) and reserve up to ``want`` requests more, in one
        transaction under the account's lock; a grant of size 0 (the budget used up) says when the
        account's requests fall under ``limit`` again. Every grant says which buckets are parked."""
        self._account(account, now)
        lease_end = whole_second(now + LEASE)

        def work(conn: sa.Connection) -> Grant:
            if limit is None:  # only counted: nothing read decides anything, no lock needed
                if closing is not None:
                    _close(conn, closing)
                grant = self._insert(conn, account, want, now, lease_end, used=0)
            else:
                grant = self._reserve_within(conn, account, want, limit, now, lease_end, closing)
            parked, rooms = parking.reading(conn, account, now=now, since=now - self.window)
            return Grant(grant.block_id, grant.size, lease_end, grant.used, grant.frees_at, parked, rooms)

        return self._transaction(work)

    def _reserve_within(
        self,
        conn: sa.Connection,
        account: str,
        want: int,
        limit: int,
        now: datetime,
        lease_end: datetime,
        closing: Spent | None,
    ) -> Grant:
        _lock_account(conn, account)
        if closing is not None:
            _close(conn, closing)
        used = _used(conn, account, now - self.window)
        if limit - used < want * SHARE:  # short: blocks of dead processes leave the window sooner
            self._reclaim(conn, account, now)
        size = grant_size(want, limit - used)
        if size == 0:
            rows = window(conn, account, now, self.window)
            return Grant(None, 0, lease_end, used, frees_at(rows, limit, self.window))
        return self._insert(conn, account, size, now, lease_end, used=used)

    def park(
        self, account: str, bucket: str, *, until: datetime, now: datetime, closing: Spent | None
    ) -> Grant:
        """Spotify refused a request of ``bucket`` with ``429 QUOTA_EXCEEDED`` until ``until``: close
        ``closing`` (the block the refused request came from) and park the bucket, in one transaction
        under the account's lock. The grant reserves nothing (size 0); ``used`` is the bucket's learnt
        size, ``parked`` the buckets parked now."""
        self._account(account, now)

        def work(conn: sa.Connection) -> Grant:
            _lock_account(conn, account)
            if closing is not None:
                _close(conn, closing)
            size = parking.park(conn, account, bucket, until=until, now=now, since=now - self.window)
            return Grant(None, 0, now, size, None, parking.parked(conn, account, now))

        return self._transaction(work)

    @staticmethod
    def _insert(
        conn: sa.Connection, account: str, size: int, now: datetime, lease_end: datetime, *, used: int
    ) -> Grant:
        """A new open block of ``size`` requests."""
        host, pid = state.this_process()
        row = {
            "account": account,
            "opened_at": now,
            "ends_at": lease_end,
            "requests": size,
            "closed": False,
            "host": host,
            "pid": pid,
        }
        key = conn.execute(blocks.insert(), row).inserted_primary_key
        assert key is not None
        return Grant(int(key[0]), size, lease_end, used + size)

    def close_block(self, spent: Spent) -> None:
        """Close a block (what its process sent, and when it last did)."""
        self._transaction(lambda conn: _close(conn, spent))

    def usage(self, account: str, *, now: datetime, limit: int | None) -> Usage:
        """``account``'s use at ``now``."""
        return self._transaction(
            lambda conn: usage(conn, account, self.where, now=now, limit=limit, span=self.window)
        )

    def _reclaim(self, conn: sa.Connection, account: str, now: datetime) -> None:
        """Close the open blocks of processes of this host that are gone: they count whole, until 24 h
        after now (what they sent is not known; they send nothing more)."""
        b = blocks
        host, pid = state.this_process()
        rows = conn.execute(
            sa.select(b.c.id, b.c.pid, b.c.ends_at).where(
                b.c.account == account, b.c.closed.is_(False), b.c.host == host, b.c.pid != pid
            )
        ).all()
        for row in rows:
            if row.pid is not None and not self._alive(row.pid):
                ends_at = min(row.ends_at, whole_second(now + IN_FLIGHT))
                conn.execute(b.update().where(b.c.id == row.id).values(closed=True, ends_at=ends_at))
                log.info("ledger: the block of the dead process %d (%d requests) closed", row.pid, row.id)


# The statements of a reservation, built once: executed with parameters, they are not built and
# coerced again on every call (that was most of a reservation's CPU).


@functools.cache
def _lock_statement(dialect: str) -> sa.Executable:
    a = accounts
    mine = a.c.account == sa.bindparam("account_")
    if dialect == "sqlite":  # a no-op write takes the write lock
        return a.update().where(mine).values(account=a.c.account)
    return sa.select(a.c.account).where(mine).with_for_update()


@functools.cache
def _used_statement() -> sa.Select[Any]:
    b = blocks
    total = sa.func.coalesce(sa.func.sum(b.c.requests), 0)
    return sa.select(total).where(
        b.c.account == sa.bindparam("account_"), b.c.ends_at > sa.bindparam("since_")
    )


@functools.cache
def _close_statements() -> tuple[sa.Delete, sa.Update]:
    b = blocks
    mine = sa.and_(b.c.id == sa.bindparam("id_"), b.c.closed.is_(False))
    update = b.update().where(mine)
    return b.delete().where(mine), update.values(
        closed=True, requests=sa.bindparam("requests_"), ends_at=sa.bindparam("ends_at_")
    )


def _lock_account(conn: sa.Connection, account: str) -> None:
    """Hold the account's lock until the transaction ends: SQLite's write lock (a no-op write first, so
    that what is read next cannot change), the account's row elsewhere."""
    conn.execute(_lock_statement(conn.dialect.name), {"account_": account})


def _used(conn: sa.Connection, account: str, since: datetime) -> int:
    return int(conn.execute(_used_statement(), {"account_": account, "since_": since}).scalar_one())


def _close(conn: sa.Connection, spent: Spent) -> None:
    delete, update = _close_statements()
    if spent.requests <= 0 or spent.last_at is None:
        conn.execute(delete, {"id_": spent.block_id})
        return
    ends_at = min(spent.lease_end, whole_second(spent.last_at + IN_FLIGHT))
    closed = conn.execute(update, {"id_": spent.block_id, "requests_": spent.requests, "ends_at_": ends_at})
    tallies = [
        {"block_id": spent.block_id, "bucket": bucket, "requests": n}
        for bucket, n in spent.buckets.items()
        if n
    ]
    if closed.rowcount and tallies:
        conn.execute(block_buckets.insert(), tallies)
