"""The account's ledger: every Web API request the tool sends, counted per developer account.

Spotify counts the Development-Mode quota per developer account (the client ids of one account share
it), over a rolling 24 h, in buckets of endpoints (docs/operations.md, "Accounts and the ledger"). The
ledger keeps the requests of each account, when they were sent and their bucket, in a database of its
own: by default a small SQLite file in the user's data directory (:func:`default_url`), or any database
given with ``--ledger URL`` (PostgreSQL or MariaDB: crawls on several machines share it). A
``--daily-budget`` then holds for all the processes of an account together, crawls and one-off
commands alike.

Requests are reserved in blocks (:class:`AccountBudget`): a process takes up to :data:`BLOCK` at a time
in one transaction that holds the account's lock (its row ``FOR UPDATE`` on PostgreSQL and MariaDB,
SQLite's write lock), then counts them in memory as it sends them: a transaction per block, not per
request. A block counts whole while it is open (``requests`` is its size, ``ends_at`` the end of its
lease: no request of it is sent later than :data:`IN_FLIGHT` before that); when its process closes it,
``requests`` becomes what was sent and ``ends_at`` the last request's time plus :data:`IN_FLIGHT`. A
block counts until 24 h after its ``ends_at``: never earlier than Spotify would, however its requests
were spread. A process that dies leaves its block open: it counts whole until its lease ends + 24 h,
or until a process of the same account on the same host finds the pid dead and closes it at that
moment (still whole: what it sent is not known).

Tables (their own small schema, created on first use; its version in ``_ledger_meta``), which may share
a database with a crawl's:

- ``_ledger_accounts``: one row per account, the row a reservation locks;
- ``_ledger_blocks``: the blocks (account, opened_at, ends_at, requests, closed, host, pid);
- ``_ledger_block_buckets``: a closed block's requests per bucket.

What Spotify's ``429 QUOTA_EXCEEDED`` tells of a bucket (parked until, its learnt size) belongs in a
table of its own keyed by (account, bucket), read in the transaction that reserves.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa

# the grouping lives in its own module (the emulator shares it); the ledger's names for it stay
from spotify_catalog.buckets import BUCKETS as BUCKETS
from spotify_catalog.buckets import OTHER as OTHER
from spotify_catalog.buckets import bucket_of
from spotify_catalog.buckets import route as route
from spotify_catalog.errors import BudgetSpent, StorageError, UsageError, format_time
from spotify_catalog.redaction import redact_url
from spotify_catalog.settings import Settings
from spotify_catalog.storage import state
from spotify_catalog.storage.engine import create_engine, describe_error
from spotify_catalog.storage.migrate import migration_lock
from spotify_catalog.storage.schema import UtcDateTime
from spotify_catalog.storage.write import in_transaction, insert_missing, upsert

log = logging.getLogger(__name__)

T = TypeVar("T")

WINDOW = timedelta(hours=24)
"""Spotify's quota counts the requests of a rolling 24 h."""
BLOCK = 10
"""Most requests a process reserves at a time."""
SHARE = 4
"""A block takes at most this fraction (1/SHARE) of what the budget has left, at least one request."""
LEASE = timedelta(minutes=10)
"""How long a reserved block may be used."""
IN_FLIGHT = timedelta(minutes=1)
"""How long after it is sent a request may still reach Spotify (and start counting there)."""
KEEP = timedelta(days=30)
"""Blocks that left the window longer ago than this are deleted."""
VERSION = 1
FILE_NAME = "ledger.db"

# ------------------------------------------------------------------------------------------- schema

metadata = sa.MetaData()


def _table(name: str, *items: sa.schema.SchemaItem) -> sa.Table:
    return sa.Table(
        name, metadata, *items, mysql_engine="InnoDB", mysql_charset="utf8mb4", mysql_collate="utf8mb4_bin"
    )


meta = _table(
    "_ledger_meta",
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(255), nullable=False),
)
accounts = _table(
    "_ledger_accounts",
    sa.Column("account", sa.String(255), primary_key=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
)
blocks = _table(
    "_ledger_blocks",
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("account", sa.String(255), nullable=False),
    sa.Column("opened_at", UtcDateTime, nullable=False),
    sa.Column("ends_at", UtcDateTime, nullable=False),  # open: the lease's end; closed: the last request's
    sa.Column("requests", sa.Integer, nullable=False),  # open: reserved; closed: sent
    sa.Column("closed", sa.Boolean, nullable=False),
    sa.Column("host", sa.String(255)),
    sa.Column("pid", sa.Integer),
    sa.Index("ix__ledger_blocks_window", "account", "ends_at"),
)
block_buckets = _table(
    "_ledger_block_buckets",
    sa.Column("block_id", sa.Integer, primary_key=True),
    sa.Column("bucket", sa.String(64), primary_key=True),
    sa.Column("requests", sa.Integer, nullable=False),
)


def default_url(environ: Mapping[str, str] | None = None) -> str:
    """The ledger in the user's data directory: ``$XDG_DATA_HOME/spotify-catalog/ledger.db``
    (``~/.local/share/spotify-catalog/ledger.db`` by default)."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return f"sqlite:///{Path(base) / 'spotify-catalog' / FILE_NAME}"


def ledger_url(settings: Settings) -> str:
    """The ledger ``settings`` name (``--ledger``), else :func:`default_url`."""
    return settings.ledger or default_url()


def _whole_second(moment: datetime) -> datetime:
    """``moment`` rounded up to a whole second (MySQL keeps whole seconds: never earlier than it was)."""
    whole = moment.replace(microsecond=0)
    return whole if whole == moment else whole + timedelta(seconds=1)


# ------------------------------------------------------------------------------------- the window


@dataclass(frozen=True)
class Usage:
    """An account's requests in the rolling window of its ledger."""

    account: str | None
    ledger: str
    """Where the ledger is (password hidden)."""
    recorded: bool
    """Whether the ledger exists (``False``: nothing was ever recorded there)."""
    requests: int = 0
    limit: int | None = None
    frees_at: datetime | None = None
    """When the requests fall under ``limit`` again (``None``: they are under it, or no limit)."""

    @property
    def left(self) -> int | None:
        return None if self.limit is None else max(0, self.limit - self.requests)


def frees_at(window: Sequence[tuple[datetime, int]], limit: int) -> datetime | None:
    """When the blocks of ``window`` (``(ends_at, requests)``, oldest first) fall under ``limit``
    requests: each leaves 24 h after its ``ends_at`` (``None``: they are under it now)."""
    used = sum(requests for _, requests in window)
    if used < limit:
        return None
    for ends_at, requests in window:
        used -= requests
        if used < limit:
            return ends_at + WINDOW
    return window[-1][0] + WINDOW if window else None


def window(conn: sa.Connection, account: str, now: datetime) -> list[tuple[datetime, int]]:
    """The blocks of ``account`` that count at ``now``: ``(ends_at, requests)``, oldest first."""
    b = blocks
    query = (
        sa.select(b.c.ends_at, b.c.requests)
        .where(b.c.account == account, b.c.ends_at > now - WINDOW, b.c.requests > 0)
        .order_by(b.c.ends_at)
    )
    return [(ends_at, int(requests)) for ends_at, requests in conn.execute(query)]


def usage(conn: sa.Connection, account: str, where: str, *, now: datetime, limit: int | None) -> Usage:
    """``account``'s use at ``now`` in the ledger behind ``conn`` (read only; a database without the
    ledger's tables has recorded nothing)."""
    if not sa.inspect(conn).has_table(blocks.name):
        return Usage(account, where, False, limit=limit)
    rows = window(conn, account, now)
    used = sum(requests for _, requests in rows)
    frees = frees_at(rows, limit) if limit is not None else None
    return Usage(account, where, True, used, limit, frees)


def grant_size(want: int, available: int | None) -> int:
    """How many requests a reservation gets: ``want`` without a limit, else at most a
    :data:`SHARE`-th of what is left (at least one while any is), so that other processes of the
    account still find some."""
    if available is None:
        return want
    if available <= 0:
        return 0
    return min(want, max(1, available // SHARE))


# ------------------------------------------------------------------------------------- the ledger


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


class Ledger:
    """The ledger database at ``url``, opened (and created) on first use; :meth:`close` disposes of it."""

    def __init__(self, url: str, *, alive: Callable[[int], bool] = state._process_alive) -> None:
        self.url = url
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
                self._engine = _open(self.url, self.where)
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
        account's requests fall under ``limit`` again."""
        self._account(account, now)
        lease_end = _whole_second(now + LEASE)

        def work(conn: sa.Connection) -> Grant:
            if limit is None:  # only counted: nothing read decides anything, no lock needed
                if closing is not None:
                    _close(conn, closing)
                return self._insert(conn, account, want, now, lease_end, used=0)
            _lock_account(conn, account)
            if closing is not None:
                _close(conn, closing)
            used = _used(conn, account, now)
            if limit - used < want * SHARE:  # short: blocks of dead processes leave the window sooner
                self._reclaim(conn, account, now)
            size = grant_size(want, limit - used)
            if size == 0:
                return Grant(None, 0, lease_end, used, frees_at(window(conn, account, now), limit))
            return self._insert(conn, account, size, now, lease_end, used=used)

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
        return self._transaction(lambda conn: usage(conn, account, self.where, now=now, limit=limit))

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
                ends_at = min(row.ends_at, _whole_second(now + IN_FLIGHT))
                conn.execute(b.update().where(b.c.id == row.id).values(closed=True, ends_at=ends_at))
                log.info("ledger: the block of the dead process %d (%d requests) closed", row.pid, row.id)


def _open(url: str, where: str) -> sa.Engine:
    """An engine on the ledger at ``url``, its tables created (or checked) under the database's
    schema lock; a SQLite file's directory is created."""
    engine = create_engine(url)
    try:
        if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
            try:
                Path(str(engine.url.database)).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UsageError(
                    f"cannot create the ledger {where}: {exc.strerror or exc} (--ledger URL, or "
                    "SPOTIFY_CATALOG_LEDGER, puts it elsewhere)"
                ) from None
        _migrate(engine, where)
    except BaseException:
        engine.dispose()
        raise
    return engine


def _version(conn: sa.Connection) -> int | None:
    if not sa.inspect(conn).has_table(meta.name):
        return None
    value = conn.execute(sa.select(meta.c.value).where(meta.c.key == "version")).scalar()
    return int(value) if value is not None else None


def _migrate(engine: sa.Engine, where: str) -> None:
    """Create the ledger's tables on first use (under the database's schema lock, so that processes
    starting together do not race); a ledger of a newer version is refused."""
    try:
        with engine.connect() as conn:
            version = _version(conn)
        if version is None:
            with migration_lock(engine) as conn:
                if _version(conn) is None:
                    metadata.create_all(conn)
                    upsert(conn, meta, [{"key": "version", "value": str(VERSION)}])
                    log.info("ledger %s created", where)
            version = VERSION
    except sa.exc.SQLAlchemyError as exc:
        raise StorageError(f"cannot set up the ledger {where}: {describe_error(exc)}") from None
    if version > VERSION:
        raise StorageError(f"the ledger {where} has version {version}, newer than this program's: upgrade")


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


def _used(conn: sa.Connection, account: str, now: datetime) -> int:
    return int(conn.execute(_used_statement(), {"account_": account, "since_": now - WINDOW}).scalar_one())


def _close(conn: sa.Connection, spent: Spent) -> None:
    delete, update = _close_statements()
    if spent.requests <= 0 or spent.last_at is None:
        conn.execute(delete, {"id_": spent.block_id})
        return
    ends_at = min(spent.lease_end, _whole_second(spent.last_at + IN_FLIGHT))
    closed = conn.execute(update, {"id_": spent.block_id, "requests_": spent.requests, "ends_at_": ends_at})
    tallies = [
        {"block_id": spent.block_id, "bucket": bucket, "requests": n}
        for bucket, n in spent.buckets.items()
        if n
    ]
    if closed.rowcount and tallies:
        conn.execute(block_buckets.insert(), tallies)


# ------------------------------------------------------------------------------------- the budget


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

    def __repr__(self) -> str:
        return f"AccountBudget(account={self.account!r}, limit={self.limit}, ledger={self.ledger.where!r})"

    def take(self, path: str) -> None:
        """Count one request to ``path`` about to be sent; :class:`BudgetSpent` if none is left."""
        bucket = bucket_of(path)
        now = self._clock()
        with self._lock:
            block = self._block
            if block is None or block.taken >= block.size or now + IN_FLIGHT > block.lease_end:
                block = self._reserve(now)
            block.taken += 1
            block.buckets[bucket] += 1
            block.last_at = now if block.last_at is None else max(block.last_at, now)

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
        grant = self.ledger.reserve(self.account, self._size, limit=self.limit, now=now, closing=closing)
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
    ledger = Ledger(ledger_url(settings))
    budget = AccountBudget(ledger, account, limit=limit, clock=clock)
    try:
        yield budget
    finally:
        try:
            budget.release()
        finally:
            ledger.close()


def describe(use: Usage) -> str:
    """``requests in the last 24 h: N of a daily budget of B (under it again after T; account A)``, and
    whether the ledger has any recorded."""
    text = f"requests in the last 24 h: {use.requests:,}"
    if use.limit is not None:
        text += f" of a daily budget of {use.limit:,}"
    notes = [] if use.frees_at is None else [f"under it again after {format_time(use.frees_at)}"]
    if use.account is None:
        notes.append("no account known: give --account, or the client id")
    elif use.recorded:
        notes.append(f"account {use.account}")
    else:
        notes.append(f"account {use.account}: none recorded, no ledger at {use.ledger}")
    return f"{text} ({'; '.join(notes)})"
