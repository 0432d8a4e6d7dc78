"""Which reader reads a table: the one place where the path is chosen.

- SQLite with ``adbc-driver-sqlite``: ADBC SQLite for every table (one read transaction), when every
  table has an exact Arrow path and the file is not open elsewhere in the process
  (:func:`~spotify_catalog.export.read_sqlite.open_sqlite_arrow`);
- otherwise one SQLAlchemy connection in one transaction (:func:`snapshot_connection`), and per table:
  ADBC PostgreSQL (psycopg, with ``adbc-driver-postgresql``, every column exact), else the driver's
  cursor (``sqlite3``, ``psycopg``), else CSV lines of the server (MariaDB/MySQL through pymysql,
  every column exact), else SQLAlchemy's rows (any other driver or column).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import pyarrow as pa
import sqlalchemy as sa

from spotify_catalog.export.read_adbc import PostgresArrowReader
from spotify_catalog.export.read_driver import CURSOR_DRIVERS, CursorReader, RowsReader
from spotify_catalog.export.read_mysql import MysqlCsvReader
from spotify_catalog.export.read_sqlite import open_sqlite_arrow
from spotify_catalog.export.reader import DEFAULT_BATCH_ROWS, Reader, ReadOptions


def choose_reader(conn: sa.Connection, table: sa.Table, options: ReadOptions) -> Reader:
    """The reader of ``table`` over ``conn`` (its transaction's snapshot): ADBC PostgreSQL where it can
    read the table, the driver's cursor for the drivers of
    :data:`~spotify_catalog.export.read_driver.CURSOR_DRIVERS`, CSV lines on MariaDB/MySQL where it
    can read the table, else SQLAlchemy's rows. Close it after reading (an ADBC reader holds a
    connection of its own)."""
    dialect = conn.dialect
    if (dialect.name, dialect.driver) == ("postgresql", "psycopg"):
        arrow = PostgresArrowReader.open(conn, table, options)
        if arrow is not None:
            return arrow
    if (dialect.name, dialect.driver) in CURSOR_DRIVERS:
        return CursorReader(conn, options)
    csv = MysqlCsvReader.open(conn, table, options)
    return csv if csv is not None else RowsReader(conn, options)


@contextlib.contextmanager
def reading(
    engine: sa.Engine, tables: Sequence[sa.Table], options: ReadOptions
) -> Iterator[Callable[[sa.Table], Reader]]:
    """How an export reads its ``tables``, every one as of the same moment: the function given picks
    the reader of a table (module docstring). Every reader it gave is closed at the end."""
    arrow = open_sqlite_arrow(engine, tables, options) if engine.dialect.name == "sqlite" else None
    if arrow is not None:
        try:
            yield lambda table: arrow
        finally:
            arrow.close()
        return
    with snapshot_connection(engine) as conn:
        chosen: list[Reader] = []

        def choose(table: sa.Table) -> Reader:
            chosen.append(choose_reader(conn, table, options))
            return chosen[-1]

        try:
            yield choose
        finally:
            for reader in chosen:
                reader.close()


def snapshot_connection(engine: sa.Engine) -> sa.Connection:
    """A connection whose one transaction reads every table as of the same moment: REPEATABLE READ on
    PostgreSQL and MySQL/MariaDB, an explicit ``BEGIN`` on SQLite (a snapshot in WAL mode; in
    rollback-journal mode writers wait until the export is done)."""
    conn = engine.connect()
    if engine.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN")
    elif engine.dialect.name in ("postgresql", "mysql", "mariadb"):
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
    return conn


def iter_batches(
    conn: sa.Connection,
    table: sa.Table,
    *,
    with_raw: bool = False,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    include_gone: bool = False,
) -> Iterator[pa.RecordBatch]:
    """Stream ``table`` as record batches of at most ``batch_rows`` rows, in primary key order, through
    the reader :func:`choose_reader` picks for ``conn``; gone rows only with ``include_gone``
    (:func:`~spotify_catalog.export.types.current_rows`)."""
    reader = choose_reader(conn, table, ReadOptions(with_raw, include_gone, batch_rows))
    try:
        yield from reader.batches(table)
    finally:
        reader.close()
