"""Opening a database only to read it (``status``, ``crawl --plan``, ``report``, ``export``, the
ledger's usage): nothing is created, migrated or written. One behaviour for every command:

- a SQLite file that does not exist, and ``:memory:`` (empty by definition), are no database:
  :func:`open_read_only` gives ``None`` and :func:`reading` says ``no database at <url> (nothing crawled
  there: check --db)`` (exit 2), or, for ``crawl --plan``, reads an empty crawl database instead;
- a PostgreSQL schema (``--db-schema`` or the URL's ``search_path``) that does not exist is no
  database either: ``no schema <name> in <url> (nothing crawled there: check --db-schema)`` (exit 2),
  or, for ``crawl --plan``, an empty crawl database (a crawl would create it);
- a crawl database is looked at as ``crawl`` looks at it before anything is read (:func:`has_crawl`):
  another program's database (exit 2), a newer or an older schema (exit 1) are refused with one line;
- a server that cannot be reached: ``cannot open the database <url>: <the driver's first line>`` (exit 1);
- a database error while the command reads: ``database error: <its first line>`` (exit 1).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa

from spotify_catalog.errors import StorageError, UsageError
from spotify_catalog.redaction import redact_url
from spotify_catalog.storage import schema
from spotify_catalog.storage.engine import (
    create_engine,
    describe_error,
    name_engine,
    name_of,
    schema_in_use,
)
from spotify_catalog.storage.migrate import schema_version


def open_read_only(url: str, *, db_schema: str | None = None) -> sa.Engine | None:
    """An engine that only reads ``url``'s database; ``None`` when there is none: a SQLite file that
    does not exist (never created here) or ``:memory:``. The URL, its driver and ``db_schema`` are
    checked as :func:`~spotify_catalog.storage.engine.create_engine` checks them; nothing connects.

    A SQLite file is opened without changing its journal mode and with ``query_only``; in a read-only
    directory, where a WAL database's ``-shm`` index cannot be created, it is opened
    ``mode=ro&immutable=1`` (safe there: no other process can write to it either). A
    ``sqlite:///file:...?uri=true`` URL is used as given, ``mode=ro`` unless it names a mode."""
    engine = create_engine(url, schema=db_schema)
    if engine.dialect.name != "sqlite":
        return engine
    engine.dispose()
    parsed = engine.url
    if parsed.query.get("uri"):
        if "mode" not in parsed.query:
            parsed = parsed.update_query_dict({"mode": "ro"})
        reader = sa.create_engine(parsed, connect_args={"timeout": 30, "check_same_thread": False})
    else:
        database = parsed.database or ""
        if database in ("", ":memory:") or not Path(database).is_file():
            return None
        reader = _sqlite_file_reader(parsed, Path(database).absolute())
    name_engine(reader, url)
    return reader


def _sqlite_file_reader(parsed: sa.URL, path: Path) -> sa.Engine:
    uri = f"file:{quote(str(path))}"

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(f"{uri}?mode=rw", uri=True, timeout=30, check_same_thread=False)
        try:
            conn.execute("PRAGMA query_only=ON")
            conn.execute("PRAGMA schema_version").fetchone()  # reads the header: opens the WAL index
        except sqlite3.OperationalError:
            conn.close()
            if os.access(path.parent, os.W_OK):
                raise
            conn = sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, check_same_thread=False)
        return conn

    return sa.create_engine(parsed, creator=connect)


def missing_schema(conn: sa.Connection) -> str | None:
    """The PostgreSQL schema ``conn`` reads (``--db-schema`` or the URL's ``search_path``) when it does
    not exist (PostgreSQL then reads it as a schema without tables); ``None`` when it exists or none
    was named."""
    target = schema_in_use(conn.engine)
    if target is None or conn.dialect.name != "postgresql":
        return None
    found = conn.execute(sa.text("SELECT 1 FROM pg_namespace WHERE nspname = :name"), {"name": target})
    return None if found.first() else target


def has_crawl(conn: sa.Connection) -> bool:
    """Whether the crawl's tables are there (a new database has none: nothing crawled yet). A schema
    that does not exist (:func:`missing_schema`) is a :class:`UsageError`: nothing was crawled there,
    and a typo must not read as an empty crawl. Another program's database, a newer schema
    (:func:`~spotify_catalog.storage.migrate.schema_version`) and an older one (only a crawl migrates)
    are errors."""
    absent = missing_schema(conn)
    if absent is not None:
        where = name_of(conn.engine).removesuffix(f" (schema {absent})")
        raise UsageError(f"no schema {absent} in {where} (nothing crawled there: check --db-schema)")
    version = schema_version(conn)
    if version is not None and version < schema.SCHEMA_VERSION:
        raise StorageError(
            f"the database has schema version {version}, this program's {schema.SCHEMA_VERSION}: "
            "a crawl with this program upgrades it"
        )
    return version is not None


@contextmanager
def reading(url: str, *, db_schema: str | None = None, new_as_empty: bool = False) -> Iterator[sa.Engine]:
    """The read-only engine of ``url``'s crawl database for the block (checked: :func:`has_crawl`),
    disposed at its end; a database error in the block is a :class:`StorageError` of one line.

    No database there is a :class:`UsageError`; with ``new_as_empty`` (``crawl --plan``: a crawl would
    create it), a database not created yet or holding no crawl is read as an empty crawl database."""
    engine = _checked(url, db_schema, new_as_empty=new_as_empty)
    try:
        yield engine
    except sa.exc.SQLAlchemyError as exc:
        raise StorageError(f"database error: {describe_error(exc)}") from None
    finally:
        engine.dispose()


def _checked(url: str, db_schema: str | None, *, new_as_empty: bool) -> sa.Engine:
    """The engine :func:`reading` yields, its database looked at once (:func:`has_crawl`); an
    in-memory database holding the empty schema where ``new_as_empty`` finds no crawl."""
    engine = open_read_only(url, db_schema=db_schema)
    if engine is None and not new_as_empty:
        raise UsageError(f"no database at {redact_url(url)} (nothing crawled there: check --db)")
    if engine is not None:
        try:
            with engine.connect() as conn:
                crawled = not (new_as_empty and missing_schema(conn)) and has_crawl(conn)
        except sa.exc.SQLAlchemyError as exc:
            engine.dispose()
            raise StorageError(f"cannot open the database {name_of(engine)}: {describe_error(exc)}") from None
        except BaseException:
            engine.dispose()
            raise
        if crawled or not new_as_empty:
            return engine
        engine.dispose()
    empty = sa.create_engine("sqlite://")
    schema.metadata.create_all(empty)
    return empty
