"""The ledger's own small schema, where it lives, and how it is created and brought up to date.

Tables (created on first use; the version in ``_ledger_meta``), which may share a database with a
crawl's:

- ``_ledger_accounts``: one row per account, the row a reservation locks;
- ``_ledger_blocks``: the blocks (account, opened_at, ends_at, requests, closed, host, pid);
- ``_ledger_block_buckets``: a closed block's requests per bucket;
- ``_ledger_buckets``: what Spotify's ``429 QUOTA_EXCEEDED`` told of a bucket of an account: parked
  until, and its learnt size (what the ledger counted in the bucket in the 24 h before the 429).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import sqlalchemy as sa

from spotify_catalog.errors import StorageError, UsageError
from spotify_catalog.settings import Settings
from spotify_catalog.storage.engine import create_engine, describe_error
from spotify_catalog.storage.migrate import migration_lock
from spotify_catalog.storage.schema import UtcDateTime
from spotify_catalog.storage.write import upsert

log = logging.getLogger(__name__)

VERSION = 2
"""The ledger schema's version: 1 without ``_ledger_buckets``."""
FILE_NAME = "ledger.db"

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
buckets = _table(
    "_ledger_buckets",
    sa.Column("account", sa.String(255), primary_key=True),
    sa.Column("bucket", sa.String(64), primary_key=True),
    sa.Column("parked_at", UtcDateTime, nullable=False),  # when the 429 came
    sa.Column("parked_until", UtcDateTime, nullable=False),  # its Retry-After
    sa.Column("learnt_size", sa.Integer, nullable=False),
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


def open_ledger(url: str, where: str) -> sa.Engine:
    """An engine on the ledger at ``url``, its tables created or brought up to date under the
    database's schema lock; a SQLite file's directory is created."""
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
        migrate(engine, where)
    except BaseException:
        engine.dispose()
        raise
    return engine


def version(conn: sa.Connection) -> int | None:
    """The ledger's schema version (``None``: no ledger in this database)."""
    if not sa.inspect(conn).has_table(meta.name):
        return None
    value = conn.execute(sa.select(meta.c.value).where(meta.c.key == "version")).scalar()
    return int(value) if value is not None else None


def _create(conn: sa.Connection) -> None:
    metadata.create_all(conn)


def _add_buckets(conn: sa.Connection) -> None:
    """Version 1 -> 2: the parked state of buckets."""
    buckets.create(conn, checkfirst=True)


STEPS: Mapping[int, Callable[[sa.Connection], None]] = {2: _add_buckets}
"""What brings a ledger of version ``n - 1`` to version ``n``."""


def migrate(engine: sa.Engine, where: str) -> None:
    """Create the ledger's tables on first use, or bring an older ledger up to date (under the
    database's schema lock, so that processes starting together do not race); a ledger of a newer
    version is refused."""
    try:
        with engine.connect() as conn:
            found = version(conn)
        if found is None or found < VERSION:
            with migration_lock(engine) as conn:
                found = version(conn)
                if found is None:
                    _create(conn)
                    log.info("ledger %s created", where)
                else:
                    for step in range(found + 1, VERSION + 1):
                        STEPS[step](conn)
                    if found < VERSION:
                        log.info("ledger %s brought from version %d to %d", where, found, VERSION)
                upsert(conn, meta, [{"key": "version", "value": str(VERSION)}])
            found = VERSION
    except sa.exc.SQLAlchemyError as exc:
        raise StorageError(f"cannot set up the ledger {where}: {describe_error(exc)}") from None
    if found > VERSION:
        raise StorageError(f"the ledger {where} has version {found}, newer than this program's: upgrade")
