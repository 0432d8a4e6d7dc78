"""The rate limit's gate and pace shared by the processes of a client id, in the ledger's database.

:class:`PaceStore` is the :class:`~spotify_catalog.pacing.SharedPace` of a
:class:`~spotify_catalog.pacing.Gate`: the pace learnt for a client id (requests its rate limit admits
in 30 s; the next run starts with it) and until when a 429 closed the gate of every process, and one
row per live process with what it sent in its last 30 s (its share of the pace, and the app's window as
the processes report it). Its tables, created on first use, live beside the ledger's (the database of
``--ledger``: :func:`spotify_catalog.ledger.ledger_url`):

- ``_pace_apps``: client_id, pace, closed_until, changed_at;
- ``_pace_processes``: client_id, process (``host:pid``), sent, seen_at, left_at (and ``held``, no
  longer read): what a process sent counts for the others until it has left the window, after the
  process itself has left.

A process reads and reports at most once a second (:data:`spotify_catalog.pacing.POLL`); a database
that fails is logged, and the process goes on with its own gate until it answers again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa

from spotify_catalog.errors import StorageError
from spotify_catalog.ledger import ledger_url
from spotify_catalog.pacing import MARGIN, POLL, WINDOW, Shared
from spotify_catalog.redaction import redact_url
from spotify_catalog.settings import Settings
from spotify_catalog.storage import state
from spotify_catalog.storage.engine import create_engine, describe_error
from spotify_catalog.storage.migrate import migration_lock
from spotify_catalog.storage.schema import UtcDateTime
from spotify_catalog.storage.write import in_transaction, upsert

log = logging.getLogger(__name__)

T = TypeVar("T")

ALIVE = timedelta(seconds=10)
"""A process that has not reported for this long is gone."""
COUNTS = timedelta(seconds=WINDOW + MARGIN + POLL)
"""How long what a process reported sending counts for the others (gone or not)."""
FORGET = timedelta(hours=1)
"""Rows of processes gone this long are deleted."""
RETRY = timedelta(seconds=30)
"""After a failure the database is tried again this much later."""

metadata = sa.MetaData()


def _table(name: str, *columns: sa.Column[object]) -> sa.Table:
    return sa.Table(
        name, metadata, *columns, mysql_engine="InnoDB", mysql_charset="utf8mb4", mysql_collate="utf8mb4_bin"
    )


apps = _table(
    "_pace_apps",
    sa.Column("client_id", sa.String(255), primary_key=True),
    sa.Column("pace", sa.Integer),
    sa.Column("closed_until", UtcDateTime),
    sa.Column("changed_at", UtcDateTime, nullable=False),
)
processes = _table(
    "_pace_processes",
    sa.Column("client_id", sa.String(255), primary_key=True),
    sa.Column("process", sa.String(255), primary_key=True),
    sa.Column("sent", sa.Integer, nullable=False),
    sa.Column("held", sa.Boolean, nullable=False),  # no longer read; ledgers made before have it
    sa.Column("seen_at", UtcDateTime, nullable=False),
    sa.Column("left_at", UtcDateTime),
)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _whole_second(moment: datetime) -> datetime:
    """Rounded up to a whole second (MySQL keeps whole seconds: never earlier than it was)."""
    whole = moment.replace(microsecond=0)
    return whole if whole == moment else whole + timedelta(seconds=1)


class PaceStore:
    """The shared pace of ``client_id`` in the database at ``url``, opened (its tables created) at the
    first :meth:`poll`; ``process`` names this process (``host:pid`` by default)."""

    def __init__(
        self,
        url: str,
        client_id: str,
        *,
        process: str | None = None,
        wall_clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.url = url
        self.where = redact_url(url)
        self.client_id = client_id
        if process is None:
            host, pid = state.this_process()
            process = f"{host}:{pid}"
        self.process = process
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._engine: sa.Engine | None = None
        self._failed_at: datetime | None = None
        self._last = Shared(None, None, 1, 0)

    def __repr__(self) -> str:
        return f"PaceStore({self.where!r}, client_id={self.client_id!r})"

    def poll(self, sent: int) -> Shared:
        """Report ``sent`` (this process's requests in its last 30 s); the pace, the gate and the other
        live processes as the database has them (what was last read while it fails)."""
        now = self._wall_clock()

        def work(conn: sa.Connection) -> Shared:
            p, a = processes, apps
            upsert(
                conn,
                p,
                [
                    {
                        "client_id": self.client_id,
                        "process": self.process,
                        "sent": sent,
                        "held": False,
                        "seen_at": now,
                    }
                ],
            )
            alive = sa.and_(p.c.left_at.is_(None), p.c.seen_at > now - ALIVE)
            counts = p.c.seen_at > now - COUNTS
            row = conn.execute(
                sa.select(a.c.pace, a.c.closed_until, a.c.changed_at).where(a.c.client_id == self.client_id)
            ).first()
            mine = p.c.client_id == self.client_id
            others = conn.execute(
                sa.select(
                    sa.func.coalesce(sa.func.sum(sa.case((alive, 1), else_=0)), 0),
                    sa.func.coalesce(sa.func.sum(sa.case((counts, p.c.sent), else_=0)), 0),
                ).where(mine, p.c.process != self.process)
            ).one()
            conn.execute(p.delete().where(mine, p.c.seen_at < now - FORGET))
            if row is None:
                return Shared(None, None, 1 + int(others[0]), int(others[1]))
            closed = row.closed_until if row.closed_until is not None and row.closed_until > now else None
            return Shared(row.pace, closed, 1 + int(others[0]), int(others[1]), row.changed_at)

        shared = self._transaction(work, now)
        if shared is not None:
            self._last = shared
        return self._last

    def record(self, pace: int | None, closed_until: datetime | None) -> datetime | None:
        """A pace learnt and the gate closed until ``closed_until``, for every process (the later of
        this and what it was); when (``None``: the database failed)."""
        now = self._wall_clock()

        def work(conn: sa.Connection) -> datetime:
            a = apps
            row: dict[str, object] = {"client_id": self.client_id, "pace": pace, "changed_at": now}
            if closed_until is not None:
                until = _whole_second(closed_until)
                was = conn.execute(
                    sa.select(a.c.closed_until).where(a.c.client_id == self.client_id)
                ).scalar()
                row["closed_until"] = until if was is None or was < until else was
            upsert(conn, a, [row])
            return now

        return self._transaction(work, now)

    def pace(self) -> int | None:
        """The pace learnt for the client id (``None``: none yet)."""
        return self._transaction(
            lambda conn: conn.execute(
                sa.select(apps.c.pace).where(apps.c.client_id == self.client_id)
            ).scalar(),
            self._wall_clock(),
            quiet=False,
        )

    def close(self) -> None:
        """Leave: this process no longer takes a share of the pace (what it reported sending counts
        until it has left the window); the engine disposed of."""
        with self._lock:
            engine, self._engine = self._engine, None
        if engine is None:
            return
        try:
            with engine.begin() as conn:
                mine = sa.and_(processes.c.client_id == self.client_id, processes.c.process == self.process)
                conn.execute(processes.update().where(mine).values(left_at=self._wall_clock()))
        except sa.exc.SQLAlchemyError as exc:
            log.debug("pace store %s: %s", self.where, describe_error(exc))
        finally:
            engine.dispose()

    def _transaction(
        self, work: Callable[[sa.Connection], T], now: datetime, *, quiet: bool = True
    ) -> T | None:
        """``work`` in a transaction; ``None`` (logged) if the database fails and ``quiet``, else
        :class:`~spotify_catalog.errors.StorageError`. After a failure the database is left alone for
        :data:`RETRY`."""
        if quiet and self._failed_at is not None and now - self._failed_at < RETRY:
            return None
        try:
            result = in_transaction(self._open(), work)
        except (sa.exc.SQLAlchemyError, StorageError, OSError) as exc:
            text = describe_error(exc) if isinstance(exc, sa.exc.SQLAlchemyError) else str(exc)
            if not quiet:
                raise StorageError(f"pace store {self.where}: {text}") from None
            if self._failed_at is None:
                log.warning("pace store %s: %s; this process paces itself alone meanwhile", self.where, text)
            self._failed_at = now
            return None
        if self._failed_at is not None:
            log.info("pace store %s answers again", self.where)
            self._failed_at = None
        return result

    def _open(self) -> sa.Engine:
        with self._lock:
            if self._engine is None:
                engine = create_engine(self.url)
                try:
                    _create_tables(engine)
                except BaseException:
                    engine.dispose()
                    raise
                self._engine = engine
            return self._engine


def _create_tables(engine: sa.Engine) -> None:
    """The tables, created under the database's schema lock unless there (a SQLite file's directory
    made first)."""
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database not in (None, "", ":memory:"):
        Path(str(database)).parent.mkdir(parents=True, exist_ok=True)
    with engine.connect() as conn:
        there = all(sa.inspect(conn).has_table(t.name) for t in metadata.sorted_tables)
    if not there:
        with migration_lock(engine) as conn:
            metadata.create_all(conn, checkfirst=True)


@contextmanager
def open_pace_store(settings: Settings) -> Iterator[PaceStore | None]:
    """The shared pace of ``settings``' client id in its ledger's database (``None`` without a client
    id); this process's row deleted at the end."""
    if not settings.client_id:
        yield None
        return
    store = PaceStore(ledger_url(settings), settings.client_id)
    try:
        yield store
    finally:
        store.close()
