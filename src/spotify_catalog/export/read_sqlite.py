"""ADBC SQLite (``adbc-driver-sqlite``, the ``parquet`` extra): every table of an export read as Arrow in
one read transaction of a read-only connection of its own."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import pyarrow as pa
import sqlalchemy as sa

from spotify_catalog.errors import StorageError
from spotify_catalog.export.arrays import cast_text_times, list_column, own_copy
from spotify_catalog.export.read_adbc import adbc_message, close_quietly, driver, read_ahead
from spotify_catalog.export.reader import ReadOptions

log = logging.getLogger(__name__)

ADBC_SQLITE_BATCH_ROWS = 10_000  # rows per batch ADBC reads from SQLite (its default: 1,024)


def sqlite_driver() -> Any:
    """``adbc_driver_sqlite.dbapi``, or None when it is not installed."""
    return driver("adbc_driver_sqlite.dbapi")


def sqlite_query(table: sa.Table, dialect: sa.Dialect, options: ReadOptions) -> str | None:
    """The query ADBC reads ``table`` with, or None when a column has no exact path
    (:meth:`~spotify_catalog.export.reader.ReadOptions.as_text`).

    The driver takes each column's Arrow type from the values of the first batch, and a column that is
    NULL there becomes int64 (the first text after it then fails). So a first row of typed literals
    (``''``, ``0``, ``0.0``; NULL in the key, which sorts it first) is put before the rows and dropped
    by :meth:`SqliteArrowReader.batches`; ``ORDER BY`` on the whole ``UNION ALL`` keeps primary key
    order (SQLite merges the literal row into the scan of the key's index, no sort). JSON objects are
    read ``CAST(... AS TEXT)`` (:func:`~spotify_catalog.export.reader.selected`): the affinity of a JSON
    column is NUMERIC, so SQLite may hold a JSON number as a number; other text columns hold text only
    (TEXT affinity; SQLAlchemy writes timestamps, dates and lists as text)."""
    if not options.as_text(table):
        return None
    columns, schema = options.columns(table), options.schema(table)
    keys = list(table.primary_key.columns)
    compiled = options.rows(table).compile(dialect=dialect)
    if compiled.params:
        return None
    quoted = dialect.identifier_preparer.quote
    first = ", ".join(
        f"{'NULL' if c in keys else _type_literal(f.type)} AS {quoted(c.name)}"
        for c, f in zip(columns, schema, strict=True)
    )
    order = ", ".join(str(columns.index(k) + 1) for k in keys)
    return f"SELECT {first} UNION ALL {compiled} ORDER BY {order}"


def _type_literal(target: pa.DataType) -> str:
    if pa.types.is_integer(target) or pa.types.is_boolean(target):
        return "0"
    if pa.types.is_floating(target):
        return "0.0"
    return "''"


def open_sqlite_arrow(
    engine: sa.Engine, tables: Sequence[sa.Table], options: ReadOptions
) -> SqliteArrowReader | None:
    """A reader of ``tables`` through ADBC SQLite, or None (read through ``sqlite3`` instead): the
    driver is not installed, a column has no exact Arrow path, the database is not a file, the file is
    open in this process otherwise, or ADBC cannot open it.

    The driver has a SQLite library of its own. Two SQLite libraries with the same file open in one
    process break each other's POSIX locks (closing a file drops every lock of the process on it), so
    the engine's idle connections are closed first, and ADBC is used only when no other file
    descriptor of this process is on the database or its ``-wal``/``-shm``. The file is opened as
    :func:`~spotify_catalog.storage.read_only.open_read_only` opens it: ``mode=rw`` with ``PRAGMA query_only``
    (so that, the last connection of a WAL database, it removes the ``-wal`` and ``-shm`` files when
    closed, as ``sqlite3`` does), and in a read-only directory where that fails (no ``-shm`` can be
    made) ``mode=ro&immutable=1``."""
    module = sqlite_driver()
    if module is None:
        return None
    queries: dict[str, str] = {}
    for table in tables:
        sql = sqlite_query(table, engine.dialect, options)
        if sql is None:
            log.info("reading through sqlite3: %s has a column ADBC cannot read exactly", table.name)
            return None
        queries[table.name] = sql
    with engine.connect() as conn:
        files = {row[1]: row[2] for row in conn.exec_driver_sql("PRAGMA database_list")}
    path = files.get("main") or ""
    if not path:
        return None
    engine.dispose()  # the pool's idle sqlite3 connections: see the docstring
    if _open_in_process(path):
        log.info("reading through sqlite3: the database is open elsewhere in this process")
        return None
    connection = _connect(module, path)
    return None if connection is None else SqliteArrowReader(connection, queries, options)


def _connect(module: Any, path: str) -> Any:
    """A read-only ADBC connection to ``path`` in a read transaction begun at once, or None."""
    uri = f"file:{quote(path)}"
    problem = ""
    for attempt in (f"{uri}?mode=rw", f"{uri}?mode=ro&immutable=1"):
        connection = None
        try:
            connection = module.connect(attempt)  # autocommit off: one transaction until closed
            with connection.cursor() as cur:
                if "mode=rw" in attempt:
                    cur.execute("PRAGMA query_only=ON")
                cur.execute("SELECT count(*) FROM sqlite_master")  # begins the read transaction
                cur.fetchall()
            log.debug("ADBC reads %s", attempt)
            return connection
        except module.Error as exc:
            if connection is not None:
                close_quietly(connection, module)
            problem = adbc_message(exc)
        if os.access(Path(path).parent, os.W_OK):  # immutable=1 only where nobody can write
            break
    log.info("reading through sqlite3: ADBC cannot read the database (%s)", problem)
    return None


def _open_in_process(path: str) -> bool:
    """Whether a file descriptor of this process is on the database ``path`` or its ``-wal``,
    ``-shm`` or ``-journal`` (True where that cannot be told)."""
    files = set()
    for name in (path, f"{path}-wal", f"{path}-shm", f"{path}-journal"):
        with contextlib.suppress(OSError):
            st = os.stat(name)
            files.add((st.st_dev, st.st_ino))
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return True
    for fd in fds:
        with contextlib.suppress(OSError):
            st = os.stat(f"/proc/self/fd/{fd}")
            if (st.st_dev, st.st_ino) in files:
                return True
    return False


class SqliteArrowReader:
    """A read-only ADBC connection to the SQLite file, in one read transaction (begun before any table
    is read), and the query of each table (:func:`sqlite_query`)."""

    name = "adbc-sqlite"

    def __init__(self, connection: Any, queries: dict[str, str], options: ReadOptions) -> None:
        self.connection, self.queries, self.options = connection, queries, options

    def batches(self, table: sa.Table) -> Iterator[pa.RecordBatch]:
        """The rows of ``table`` in the connection's read transaction: the typed first row of
        :func:`sqlite_query` dropped, each column cast to the lake's type (text timestamps and dates,
        integer booleans, as the ``sqlite3`` path does) and list columns parsed; in batches of exactly
        ``batch_rows`` (the rows of one read that do not fill a batch are joined to the next read's)."""
        module: Any = sqlite_driver()
        schema, batch_rows = self.options.schema(table), self.options.batch_rows
        convert = [_to_lake(c, f.type) for c, f in zip(self.options.columns(table), schema, strict=True)]
        log.info("reading %s through ADBC (adbc-driver-sqlite)", table.name)
        with self.connection.cursor() as cur:
            try:
                rows = str(max(ADBC_SQLITE_BATCH_ROWS, batch_rows))
                cur.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": rows})
                cur.execute(self.queries[table.name])
                reader = cur.fetch_record_batch()
            except module.Error as exc:
                raise StorageError(f"reading the database failed: {adbc_message(exc)}") from None
            with contextlib.closing(read_ahead(reader, (module.Error,))) as batches:
                converted = (
                    pa.RecordBatch.from_arrays(
                        [conv(b.column(i)) for i, conv in enumerate(convert)], schema=schema
                    )
                    for b in _without_typed_row(batches, table)
                )
                yield from _rebatch(converted, batch_rows)

    def close(self) -> None:
        close_quietly(self.connection, sqlite_driver())


def _without_typed_row(batches: Iterator[pa.RecordBatch], table: sa.Table) -> Iterator[pa.RecordBatch]:
    """``batches`` without the typed row of :func:`sqlite_query` (checked to be it: NULL in every key
    column, which no row of the table has), and without empty batches."""
    first = True
    for batch in batches:
        if first:
            keys = [batch.schema.get_field_index(k.name) for k in table.primary_key.columns]
            if not batch.num_rows or any(batch.column(i)[0].is_valid for i in keys):
                raise StorageError(f"reading {table.name} failed: the first row is not the typed row")
            batch, first = batch.slice(1), False
        if batch.num_rows:
            yield batch


def _rebatch(batches: Iterator[pa.RecordBatch], batch_rows: int) -> Iterator[pa.RecordBatch]:
    """``batches`` in batches of exactly ``batch_rows`` rows, the last one shorter, as the other
    readers give them."""
    carry: pa.RecordBatch | None = None  # the rows of the last read that did not fill a batch
    for whole in batches:
        if carry is not None:
            head = whole.slice(0, batch_rows - carry.num_rows)
            joined = pa.Table.from_batches([carry, head]).combine_chunks().to_batches()[0]
            whole = whole.slice(head.num_rows)
            if joined.num_rows < batch_rows:
                carry = joined
                continue
            yield joined
        full = whole.num_rows - whole.num_rows % batch_rows
        for start in range(0, full, batch_rows):
            yield whole.slice(start, batch_rows)
        carry = whole.slice(full) if full < whole.num_rows else None
    if carry is not None:
        yield carry


def _to_lake(column: sa.Column[Any], target: pa.DataType) -> Callable[[pa.Array[Any]], pa.Array[Any]]:
    """How an ADBC SQLite column (text, int64 or double) becomes ``target``."""
    if pa.types.is_list(target):
        return list_column(column, target)

    def cast_to(array: pa.Array[Any]) -> pa.Array[Any]:
        if array.null_count == len(array):  # int64 when every value of a batch is NULL
            return cast("pa.Array[Any]", pa.nulls(len(array), type=cast(Any, target)))
        array = cast_text_times(array, target)
        if array.type == target:  # copied into Arrow's pool: the driver's batch is freed at once
            return own_copy(array)
        return cast("pa.Array[Any]", array.cast(target))

    return cast_to
