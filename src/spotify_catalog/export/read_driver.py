"""Two readers over a SQLAlchemy connection (its transaction, so its snapshot): SQLAlchemy's rows (any
database) and the DBAPI cursor read column by column (``sqlite3``, ``psycopg``)."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

import pyarrow as pa
import sqlalchemy as sa

from spotify_catalog.errors import StorageError, first_line
from spotify_catalog.export.arrays import cast_text_times, converter, list_values
from spotify_catalog.export.reader import ReadOptions
from spotify_catalog.redaction import redact_url

log = logging.getLogger(__name__)

CURSOR_DRIVERS = {("sqlite", "pysqlite"), ("postgresql", "psycopg")}  # (dialect, driver) CursorReader reads


class RowsReader:
    """SQLAlchemy's rows of ``conn`` (``yield_per``: a server-side cursor where the driver has one),
    turned into Arrow a batch at a time: any database SQLAlchemy reads."""

    name = "rows"

    def __init__(self, conn: sa.Connection, options: ReadOptions) -> None:
        self.conn, self.options = conn, options

    def batches(self, table: sa.Table) -> Iterator[pa.RecordBatch]:
        log.info("reading %s through SQLAlchemy rows (%s)", table.name, self.conn.dialect.driver)
        columns, schema = self.options.columns(table), self.options.schema(table)
        converters = [converter(c) for c in columns]
        result = self.conn.execution_options(yield_per=self.options.batch_rows).execute(
            self.options.query(table)
        )
        for rows in result.partitions():
            values = list(zip(*rows, strict=True)) if rows else [() for _ in columns]
            arrays = [
                pa.array(col if conv is None else [conv(v) for v in col], type=f.type)
                for col, conv, f in zip(values, converters, schema, strict=True)
            ]
            yield pa.RecordBatch.from_arrays(arrays, schema=schema)

    def close(self) -> None:
        """Nothing of its own: the connection is its caller's."""


class CursorReader:
    """The DBAPI cursor of ``conn`` (same transaction, so the same snapshot; on PostgreSQL a
    server-side cursor): no ``Row`` objects, values converted a column at a time
    (:func:`column_reader`). For the drivers of :data:`CURSOR_DRIVERS`; subclasses change the query,
    the cursor and how a batch of rows becomes Arrow."""

    name = "cursor"

    def __init__(self, conn: sa.Connection, options: ReadOptions) -> None:
        self.conn, self.options = conn, options

    def describe(self) -> str:
        """How the log names this path (``reading <table> through ...``)."""
        return f"the {self.conn.dialect.driver} cursor"

    def statement(self, table: sa.Table) -> sa.Select[Any]:
        return self.options.query(table)

    def cursor(self, dbapi_conn: Any) -> Any:
        if self.conn.dialect.name == "postgresql":  # a server-side cursor: rows arrive batch by batch
            cursor = dbapi_conn.cursor(name=f"lake_{uuid.uuid4().hex}")
            cursor.itersize = self.options.batch_rows
            return cursor
        return dbapi_conn.cursor()

    def converter(self, table: sa.Table, description: Any) -> Callable[[Sequence[Any]], pa.RecordBatch]:
        """How a batch of the cursor's rows becomes a record batch of the lake's schema."""
        columns, schema = self.options.columns(table), self.options.schema(table)
        dialect = self.conn.dialect
        readers = [
            column_reader(c, f.type, dialect, d[1])
            for c, f, d in zip(columns, schema, description, strict=True)
        ]

        def convert(rows: Sequence[Any]) -> pa.RecordBatch:
            values = list(zip(*rows, strict=True))
            arrays = [read(col) for read, col in zip(readers, values, strict=True)]
            return pa.RecordBatch.from_arrays(arrays, schema=schema)

        return convert

    def batches(self, table: sa.Table) -> Iterator[pa.RecordBatch]:
        conn, dialect = self.conn, self.conn.dialect
        log.info("reading %s through %s", table.name, self.describe())
        compiled = self.statement(table).compile(dialect=dialect)
        params: Any = compiled.params
        if dialect.positional:
            params = tuple(compiled.params[k] for k in compiled.positiontup or ())
        conn.exec_driver_sql("SELECT 1").close()  # begins SQLAlchemy's transaction if not yet begun
        cursor = self.cursor(conn.connection.driver_connection)
        try:
            cursor.execute(str(compiled), params)
            convert = self.converter(table, cursor.description)
            while rows := cursor.fetchmany(self.options.batch_rows):
                yield convert(rows)
        except dialect.loaded_dbapi.Error as exc:  # what SQLAlchemy would have wrapped
            raise StorageError(f"reading the database failed: {redact_url(first_line(exc))}") from None
        finally:
            with contextlib.suppress(dialect.loaded_dbapi.Error):  # the connection may be closed already
                cursor.close()

    def close(self) -> None:
        """Nothing of its own: the connection is its caller's."""


def column_reader(
    column: sa.Column[Any], target: pa.DataType, dialect: sa.Dialect, coltype: Any
) -> Callable[[Sequence[Any]], pa.Array[Any]]:
    """How to turn the driver's values of ``column`` (one batch) into an Arrow array of ``target``: text
    timestamps and dates (SQLite) and integer booleans are cast by Arrow, list columns parsed by orjson,
    other types go through SQLAlchemy's own result processor."""

    def untyped(values: Sequence[Any]) -> pa.Array[Any]:
        array = pa.array(values)  # all None: a null array, which casts to any type
        return cast("pa.Array[Any]", cast_text_times(array, target).cast(target))

    if pa.types.is_timestamp(target) or pa.types.is_boolean(target) or pa.types.is_date32(target):
        return untyped
    convert = converter(column)
    if convert is not None and pa.types.is_list(target):
        return list_values(column, target)
    if convert is not None:
        return lambda values: pa.array([convert(v) for v in values], type=target)
    process = column.type.dialect_impl(dialect).result_processor(dialect, coltype)
    if process is None:
        return lambda values: pa.array(values, type=target)
    return lambda values: pa.array([process(v) for v in values], type=target)
