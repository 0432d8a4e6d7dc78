"""Writes: upserts that touch only the columns a row carries, child rows replaced, rows inserted when
missing, what a response yields (:class:`~spotify_catalog.transform.Rows`) written at once, and a
transaction run again after a deadlock. Rows go to the driver's ``executemany`` without SQLAlchemy's
per-row work (:func:`execute_many`).

``upsert`` updates only the columns a row carries, so a simplified object never erases the columns of
a full one; ``raw`` is replaced only by a full object or while the stored row is still simplified, and
``detail`` never goes back from ``full`` to ``simplified``.
"""

from __future__ import annotations

import logging
import operator
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite

from spotify_catalog.errors import StorageError
from spotify_catalog.storage import schema
from spotify_catalog.storage.engine import describe_error
from spotify_catalog.transform import Rows

log = logging.getLogger(__name__)

Row = Mapping[str, Any]


def _insert_for(name: str, table: sa.Table) -> Any:
    if name == "postgresql":
        return postgresql.insert(table)
    if name in ("mysql", "mariadb"):
        return mysql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise StorageError(f"unsupported database dialect {name!r}")


@dataclass(frozen=True)
class _Prepared:
    """A statement compiled once for a dialect: its SQL, how to take a row's parameters (a tuple in
    parameter order for a positional paramstyle, else the row's dict) and the bind processors of the
    parameters that need one."""

    sql: str
    positional: bool
    values: Callable[[Row], tuple[Any, ...]]  # a row's values in parameter order (positional)
    convert: tuple[tuple[int, str, Callable[[Any], Any]], ...]  # (position, key, processor)


_prepared: dict[tuple[Any, ...], _Prepared | None] = {}


def execute_many(conn: sa.Connection, stmt: Any, columns: Sequence[str], rows: Sequence[Row]) -> None:
    """``conn.execute(stmt, rows)`` for rows that all have ``columns``, without SQLAlchemy's per-row
    work: the statement is compiled once per (statement, dialect, columns) and the rows go to the
    driver's ``executemany`` as tuples or dicts, each value through its type's bind processor (the
    same conversions SQLAlchemy makes). A statement whose parameters are not plain column values
    goes through ``conn.execute``. Meant for statements built once (the cache holds them)."""
    dialect = conn.dialect
    key = (stmt, type(dialect), dialect.server_version_info, dialect.paramstyle, tuple(columns))
    if key not in _prepared:
        _prepared[key] = _prepare(dialect, stmt, columns)
    prepared = _prepared[key]
    if prepared is None:
        conn.execute(stmt, list(rows))
        return
    try:
        params = _parameters(prepared, rows)
    except Exception as exc:  # a bind processor refused a value: as SQLAlchemy reports it
        raise sa.exc.StatementError(str(exc), prepared.sql, None, exc) from exc
    conn.exec_driver_sql(prepared.sql, params)


def _parameters(prepared: _Prepared, rows: Sequence[Row]) -> list[Any]:
    """The driver's parameters of ``rows``: tuples in parameter order (positional paramstyles) or
    dicts, converted a column at a time."""
    convert = prepared.convert
    if not prepared.positional:
        if not convert:
            return list(rows)
        params = [dict(row) for row in rows]
        for _, name, process in convert:
            for named in params:
                named[name] = process(named[name])
        return params
    values = list(map(prepared.values, rows))
    if not convert or not values:
        return values
    columns: list[Any] = list(zip(*values, strict=True))
    for position, _, process in convert:
        columns[position] = list(map(process, columns[position]))
    return list(zip(*columns, strict=True))


def _prepare(dialect: sa.Dialect, stmt: Any, columns: Sequence[str]) -> _Prepared | None:
    compiled = stmt.compile(dialect=dialect, column_keys=list(columns))
    binds = compiled.binds
    names = tuple(compiled.positiontup or ()) if compiled.positional else tuple(binds)
    escaped = getattr(compiled, "escaped_bind_names", None) or {}
    wanted = set(columns)
    if escaped or any(binds[n].key != n or n not in wanted for n in names) or len(set(names)) != len(names):
        return None  # renamed, literal or repeated parameters: leave them to SQLAlchemy
    if not compiled.positional and set(names) != wanted:
        return None
    convert = []
    for position, name in enumerate(names):
        kind = binds[name].type
        process = kind.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            if isinstance(kind, sa.DateTime | sa.Date | schema.UtcDateTime):
                process = _last_value_cached(process)
            convert.append((position, name, process))
    if len(names) == 1:
        (only,) = names
        values: Callable[[Row], tuple[Any, ...]] = lambda row: (row[only],)  # noqa: E731
    else:
        values = operator.itemgetter(*names)
    return _Prepared(compiled.string, bool(compiled.positional), values, tuple(convert))


def _last_value_cached(process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``process`` (of a date or time) that remembers its last argument and result: the rows of one
    answer share their ``fetched_at`` (one object), converted once instead of once a row. Thread-safe:
    one tuple swapped."""
    last: tuple[Any, Any] = (object(), None)

    def cached(value: Any) -> Any:
        nonlocal last
        seen, result = last
        if value is seen and value is not None:
            return result
        result = process(value)
        last = (value, result)
        return result

    return cached


def upsert(conn: sa.Connection, table: sa.Table, rows: Iterable[Row]) -> int:
    """Insert or update ``rows`` by primary key, touching only the columns each row has.

    Rows with different column sets are written by separate statements. Returns the number of rows.
    """
    by_order: dict[tuple[str, ...], list[Row]] = defaultdict(list)
    for row in rows:
        by_order[tuple(row)].append(row)
    groups: dict[tuple[str, ...], list[Row]] = defaultdict(list)
    for order, same in by_order.items():
        groups[tuple(sorted(order))].extend(same)
    keys = [c.name for c in table.primary_key.columns]
    count = 0
    for columns, group in groups.items():
        # one row per key within a statement (PostgreSQL refuses duplicates in one ON CONFLICT), in key
        # order: concurrent writers lock rows in the same order
        by_key = {tuple(r[k] for k in keys): r for r in group}
        try:
            ordered = sorted(by_key)
        except TypeError:  # a NULL in a key
            ordered = sorted(by_key, key=_sort_key)
        unique = [by_key[k] for k in ordered]
        count += len(unique)
        execute_many(conn, _upsert_statement(conn.dialect.name, table, columns), columns, unique)
    return count


_statements: dict[tuple[str, str, tuple[str, ...], bool], Any] = {}


def _upsert_statement(dialect: str, table: sa.Table, columns: tuple[str, ...], *, update: bool = True) -> Any:
    """The upsert of ``table`` for rows with ``columns`` (``update=False``: an insert of missing keys
    that leaves existing rows alone), built once per (dialect, table, columns): the same statement
    object again lets SQLAlchemy skip building its cache key, and :func:`execute_many` compiling it."""
    key = (dialect, table.name, columns, update)
    stmt = _statements.get(key)
    if stmt is not None and stmt.table is table:
        return stmt
    stmt = _insert_for(dialect, table)
    keys = [c.name for c in table.primary_key.columns]
    new = stmt.inserted if dialect in ("mysql", "mariadb") else stmt.excluded
    updates = _updates(table, [c for c in columns if c not in keys], new) if update else []
    if not updates:
        stmt = _do_nothing_for(dialect, table, stmt)
    elif dialect in ("mysql", "mariadb"):
        stmt = stmt.on_duplicate_key_update(updates)  # MySQL applies these in order
    else:
        stmt = stmt.on_conflict_do_update(index_elements=keys, set_=dict(updates))
    _statements[key] = stmt
    return stmt


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
    delete, insert = _child_statements(table, parent_column)
    conn.execute(delete, {"parents": ids})
    rows = list(rows)
    if rows:
        execute_many(conn, insert, tuple(rows[0]), rows)
    return len(rows)


_child_cache: dict[tuple[str, str], tuple[sa.Delete, sa.Insert, sa.Table]] = {}


def _child_statements(table: sa.Table, parent_column: str) -> tuple[sa.Delete, sa.Insert]:
    """The delete (of the children of the bound ``parents``) and the insert of a child table, built once."""
    cached = _child_cache.get((table.name, parent_column))
    if cached is None or cached[2] is not table:
        parents: sa.BindParameter[str] = sa.bindparam("parents", expanding=True)
        cached = (table.delete().where(table.c[parent_column].in_(parents)), table.insert(), table)
        _child_cache[(table.name, parent_column)] = cached
    return cached[0], cached[1]


def insert_missing(conn: sa.Connection, table: sa.Table, rows: Iterable[Row]) -> int:
    """Insert rows whose key is not there yet; existing rows are left alone."""
    rows = list(rows)
    if not rows:
        return 0
    columns = tuple(rows[0])
    execute_many(conn, _upsert_statement(conn.dialect.name, table, columns, update=False), columns, rows)
    return len(rows)


def _do_nothing_for(dialect: str, table: sa.Table, stmt: Any) -> Any:
    keys = [c.name for c in table.primary_key.columns]
    if dialect in ("mysql", "mariadb"):
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
