"""Engine, schema creation/migration and per-dialect upserts.

``upsert`` updates only the columns a row carries, so a simplified object never erases the columns of
a full one; ``raw`` is replaced only by a full object or while the stored row is still simplified, and
``detail`` never goes back from ``full`` to ``simplified``.
"""

from __future__ import annotations

import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite

from spotify_catalog.errors import StorageError, UsageError
from spotify_catalog.storage import schema
from spotify_catalog.transform import Rows

log = logging.getLogger(__name__)

Row = Mapping[str, Any]

__all__ = ["Rows", "create_engine", "migrate", "open_database", "upsert", "write_rows"]


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<invalid database URL>"


def create_engine(url: str) -> sa.Engine:
    """An engine for ``url`` (sqlite, postgresql+psycopg, mysql+pymysql); a bad URL is a usage error."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise UsageError(f"not a database URL: {url!r} (e.g. sqlite:///catalog.db)") from None
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
    elif parsed.get_backend_name() == "mysql":
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
        kwargs["pool_pre_ping"] = True
    try:
        engine = sa.create_engine(parsed, **kwargs)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as exc:
        raise UsageError(f"unusable database URL {redact(url)}: {exc}") from None
    except ModuleNotFoundError as exc:
        raise UsageError(f"database driver {exc.name!r} is not installed for {redact(url)}") from None
    if parsed.get_backend_name() == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def migrate(engine: sa.Engine) -> None:
    """Create the schema, or bring an older one up to :data:`schema.SCHEMA_VERSION`."""
    try:
        with engine.begin() as conn:
            schema.metadata.create_all(conn)
            version = conn.execute(
                sa.select(schema.state.c.value).where(schema.state.c.key == "schema_version")
            ).scalar()
            if version is None:
                conn.execute(
                    schema.state.insert().values(key="schema_version", value=str(schema.SCHEMA_VERSION))
                )
            elif int(version) > schema.SCHEMA_VERSION:
                raise StorageError(
                    f"the database has schema version {version}, newer than this program's "
                    f"{schema.SCHEMA_VERSION}: upgrade spotify-catalog"
                )
            # versions below SCHEMA_VERSION would be migrated here, one step at a time
    except sa.exc.SQLAlchemyError as exc:
        raise StorageError(f"cannot set up the database {engine.url!r}: {describe_error(exc)}") from None


def open_database(url: str) -> sa.Engine:
    """``create_engine`` + ``migrate``."""
    engine = create_engine(url)
    migrate(engine)
    return engine


def describe_error(exc: BaseException) -> str:
    """The first line of a database error, for a one-line message."""
    text = str(getattr(exc, "orig", None) or exc)
    return text.splitlines()[0] if text else type(exc).__name__


def _insert(conn: sa.Connection, table: sa.Table) -> Any:
    name = conn.dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name in ("mysql", "mariadb"):
        return mysql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise StorageError(f"unsupported database dialect {name!r}")


def upsert(conn: sa.Connection, table: sa.Table, rows: Iterable[Row]) -> int:
    """Insert or update ``rows`` by primary key, touching only the columns each row has.

    Rows with different column sets are written by separate statements. Returns the number of rows.
    """
    groups: dict[tuple[str, ...], list[Row]] = defaultdict(list)
    for row in rows:
        groups[tuple(sorted(row))].append(row)
    keys = [c.name for c in table.primary_key.columns]
    count = 0
    for columns, group in groups.items():
        # one row per key within a statement (PostgreSQL refuses duplicates in one ON CONFLICT), in key
        # order: concurrent writers lock rows in the same order
        by_key = {tuple(r[k] for k in keys): r for r in group}
        unique = [by_key[k] for k in sorted(by_key, key=_sort_key)]
        count += len(unique)
        stmt = _insert(conn, table)
        new = stmt.inserted if conn.dialect.name in ("mysql", "mariadb") else stmt.excluded
        updates = _updates(table, [c for c in columns if c not in keys], new)
        if not updates:
            stmt = _do_nothing(conn, table, stmt)
        elif conn.dialect.name in ("mysql", "mariadb"):
            stmt = stmt.on_duplicate_key_update(updates)  # MySQL applies these in order
        else:
            stmt = stmt.on_conflict_do_update(index_elements=keys, set_=dict(updates))
        conn.execute(stmt, unique)
    return count


def _sort_key(key: tuple[Any, ...]) -> tuple[tuple[bool, Any], ...]:
    return tuple((v is None, v if v is not None else 0) for v in key)


def _updates(table: sa.Table, columns: Sequence[str], new: Any) -> list[tuple[str, Any]]:
    """SET clauses; ``raw`` before ``detail`` because MySQL evaluates them left to right."""
    updates: list[tuple[str, Any]] = []
    has_detail = "detail" in table.c and "detail" in columns
    for name in columns:
        if name in ("raw", "detail") and has_detail:
            continue
        updates.append((name, new[name]))
    if has_detail:
        # literal SQL, not bound parameters: pymysql's executemany cannot bind inside ON DUPLICATE KEY
        full: sa.ColumnElement[str] = sa.literal_column("'full'")
        if "raw" in columns:
            keep = sa.and_(table.c.detail == full, new["detail"] != full)
            updates.append(("raw", sa.case((keep, table.c.raw), else_=new["raw"])))
        updates.append(("detail", sa.case((table.c.detail == full, full), else_=new["detail"])))
    return updates


def replace_children(
    conn: sa.Connection, table: sa.Table, parent_column: str, parent_ids: Iterable[str], rows: Iterable[Row]
) -> int:
    """Replace the child rows (e.g. ``album_artists``) of the given parents with ``rows``."""
    ids = sorted(set(parent_ids))
    if not ids:
        return 0
    conn.execute(table.delete().where(table.c[parent_column].in_(ids)))
    rows = list(rows)
    if rows:
        conn.execute(table.insert(), rows)
    return len(rows)


def insert_missing(conn: sa.Connection, table: sa.Table, rows: Iterable[Row]) -> int:
    """Insert rows whose key is not there yet; existing rows are left alone."""
    rows = list(rows)
    if not rows:
        return 0
    conn.execute(_do_nothing(conn, table, _insert(conn, table)), rows)
    return len(rows)


def _do_nothing(conn: sa.Connection, table: sa.Table, stmt: Any) -> Any:
    keys = [c.name for c in table.primary_key.columns]
    if conn.dialect.name in ("mysql", "mariadb"):
        return stmt.on_duplicate_key_update({keys[0]: table.c[keys[0]]})
    return stmt.on_conflict_do_nothing(index_elements=keys)


def write_rows(conn: sa.Connection, rows: Rows) -> int:
    """Write what :mod:`spotify_catalog.transform` gathered (call inside a transaction); row count."""
    written = 0
    for name, table_rows in sorted(rows.upserts.items()):  # tables in a fixed order: see upsert
        written += upsert(conn, schema.metadata.tables[name], table_rows)
    for name, parents in sorted(rows.children.items()):
        table = schema.metadata.tables[name]
        parent_column = table.primary_key.columns.values()[0].name
        children = [row for parent_rows in parents.values() for row in parent_rows]
        written += replace_children(conn, table, parent_column, parents, children)
    return written


T = TypeVar("T")

# transient conflicts between concurrent writers: the transaction is run again
_RETRY_SQLSTATES = frozenset({"40001", "40P01"})  # PostgreSQL serialization failure, deadlock detected
_RETRY_MYSQL_CODES = frozenset({1213, 1205})  # MySQL/MariaDB deadlock, lock wait timeout


def is_conflict(exc: sa.exc.DBAPIError) -> bool:
    """Whether a database error is a deadlock or serialization failure worth running again."""
    orig = exc.orig
    if getattr(orig, "sqlstate", None) in _RETRY_SQLSTATES:
        return True
    code = next(iter(getattr(orig, "args", ())), None)
    return code in _RETRY_MYSQL_CODES


def in_transaction(
    engine: sa.Engine,
    work: Callable[[sa.Connection], T],
    *,
    attempts: int = 5,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``work`` in a transaction of its own, run again (up to ``attempts`` times, with a short random
    pause) when the database aborts it for a deadlock or a serialization failure: concurrent crawls
    writing the same rows."""
    for attempt in range(1, attempts + 1):
        try:
            with engine.begin() as conn:
                return work(conn)
        except sa.exc.DBAPIError as exc:
            if attempt == attempts or not is_conflict(exc):
                raise
            log.info("transaction aborted by a concurrent writer (%s); again", describe_error(exc))
            sleep(random.uniform(0.01, 0.05) * attempt)  # jitter
    raise AssertionError("unreachable")


def table_contents(
    conn: sa.Connection, table: sa.Table, exclude: Sequence[str] = ("fetched_at",)
) -> list[tuple[Any, ...]]:
    """Every row of ``table`` (without the ``exclude`` columns), sorted by primary key in Python (the
    same order on every backend, whatever its collation): for comparisons."""
    columns = [c for c in table.c if c.name not in exclude]
    keys = [i for i, c in enumerate(columns) if c.primary_key]
    rows = [tuple(r) for r in conn.execute(sa.select(*columns))]
    return sorted(rows, key=lambda r: tuple(r[i] for i in keys))
