"""The data lake: tables of the database as Parquet (or CSV, JSON Lines) on local disk or S3.

Layout (Hive-style partitions, one folder per snapshot date)::

    TO/<table>/dt=YYYY-MM-DD/part-00000.parquet

Everything is generic over a ``sqlalchemy.MetaData``: :func:`arrow_schema` maps the column types to
Arrow types (integers stay integers, timestamps are UTC, written as INT96 for Hive's reader,
``info={"list_of": T}`` JSON columns become lists), rows are streamed from the database in batches
and written as row groups, so memory stays flat however large the table. A partition is written to
``TO/_staging/<run>/`` first (names starting with ``_`` are ignored by Hive-partition readers) and
swapped into place only when every table of the run is complete; see ``docs/lake.md`` for exactly
what a reader can observe locally and on S3. An export removes its staging area (and aborts its S3
multipart uploads) however it ends, Ctrl-C and SIGTERM included, and removes what exports that died
left behind (:func:`remove_stale_staging`).
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import functools
import importlib
import json
import logging
import os
import re
import shutil
import sys
import threading
import time as systime
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote, urlparse

import boto3
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.fs as pafs
import pyarrow.json as pa_json
import pyarrow.parquet as pq
import sqlalchemy as sa
from botocore.exceptions import BotoCoreError, ClientError
from sqlalchemy.dialects import postgresql

from spotify_catalog import lake_lock
from spotify_catalog.errors import SpotifyCatalogError, StorageError, UsageError, first_line
from spotify_catalog.storage import db
from spotify_catalog.storage import schema as catalog_schema

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import MultipartUploadTypeDef, ObjectIdentifierTypeDef

log = logging.getLogger(__name__)

FORMATS = ("parquet", "csv", "jsonl")
COMPRESSIONS = ("zstd", "snappy", "none")
DDL_DIALECTS = ("athena", "spark", "duckdb")
RAW_COLUMN = "raw"
GONE_COLUMN = "gone_at"  # set on rows no longer in the catalog; such rows are exported only when asked
PARTITION = "dt"
STAGING = "_staging"
DEFAULT_BATCH_ROWS = 5_000  # rows fetched and converted at a time: small keeps Python's memory flat
DEFAULT_ROW_GROUP_ROWS = 100_000  # rows per Parquet row group (Arrow batches gathered until then)
ROW_GROUP_BYTES = 64 * 2**20  # ... or until they hold this much Arrow data (wide rows: --with-raw)
ADBC_SQLITE_BATCH_ROWS = 10_000  # rows per batch ADBC reads from SQLite (its default: 1,024)
ADBC_BATCH_BYTES = 4 * 2**20  # Arrow data per batch ADBC reads from PostgreSQL (its default: 16 MiB)
READ_AHEAD_BATCHES = 4  # ADBC batches read ahead while the main thread converts and writes
STALE_STAGING = timedelta(hours=1)  # staging untouched this long was left by an export that died
# Parquet timestamps as INT96 (UTC instants, nanoseconds), the encoding Spark writes by default: Hive's
# Parquet reader (Hive 2 and 3, Spark with spark.sql.hive.convertMetastoreParquet=false) cannot read
# INT64 timestamps at all; Spark, Athena/Trino and DuckDB read INT96 as the same instants (docs/lake.md).
INT96_TIMESTAMPS = True

Progress = Callable[[str, int], None]
"""``progress(table, rows_written_so_far)``: called after every batch (and once at the end of a table)."""


# --------------------------------------------------------------------------------------------------
# Types: SQLAlchemy -> Arrow (pure)


def _base_type(sa_type: sa.types.TypeEngine[Any]) -> sa.types.TypeEngine[Any]:
    """The storage type under any ``TypeDecorator`` (e.g. a UTC datetime decorator)."""
    while isinstance(sa_type, sa.types.TypeDecorator):
        sa_type = sa_type.impl_instance
    return sa_type


def arrow_type(
    sa_type: sa.types.TypeEngine[Any], *, list_of: sa.types.TypeEngine[Any] | None = None
) -> pa.DataType:
    """The Arrow type for a SQLAlchemy type; JSON with ``list_of`` is a list, other JSON is text."""
    t = _base_type(sa_type)
    if isinstance(t, sa.JSON):
        return pa.list_(arrow_type(list_of)) if list_of is not None else pa.string()
    if isinstance(t, sa.Boolean):
        return pa.bool_()
    if isinstance(t, sa.BigInteger):
        return pa.int64()
    if isinstance(t, sa.SmallInteger):
        return pa.int16()
    if isinstance(t, sa.Integer):
        return pa.int32()
    if isinstance(t, sa.Float):
        return pa.float32() if t.precision is not None and t.precision <= 24 else pa.float64()
    if isinstance(t, sa.Numeric):
        if t.precision is None:
            return pa.float64()
        return pa.decimal128(t.precision, t.scale or 0)
    if isinstance(t, sa.DateTime):
        return pa.timestamp("us", tz="UTC")  # naive values are taken as UTC (the project's convention)
    if isinstance(t, sa.Date):
        return pa.date32()
    if isinstance(t, sa.Time):
        return pa.time64("us")
    if isinstance(t, sa.Interval):
        return pa.duration("us")
    if isinstance(t, sa.LargeBinary | sa.BINARY | sa.VARBINARY):
        return pa.binary()
    if isinstance(t, sa.String | sa.Uuid):
        return pa.string()
    raise TypeError(f"no Arrow type for SQLAlchemy type {sa_type!r}")


def exported_columns(table: sa.Table, *, with_raw: bool, include_gone: bool = False) -> list[sa.Column[Any]]:
    """The columns of ``table`` that go to the lake (``raw`` only with ``with_raw``, ``gone_at`` only
    with ``include_gone``)."""
    return [
        c
        for c in table.columns
        if (with_raw or c.name != RAW_COLUMN) and (include_gone or c.name != GONE_COLUMN)
    ]


def arrow_schema(table: sa.Table, *, with_raw: bool = False, include_gone: bool = False) -> pa.Schema:
    """The Arrow schema of ``table`` in the lake: column order and nullability as in the database."""
    return pa.schema(
        [
            pa.field(c.name, arrow_type(c.type, list_of=c.info.get("list_of")), nullable=bool(c.nullable))
            for c in exported_columns(table, with_raw=with_raw, include_gone=include_gone)
        ]
    )


def distinct_values(column: sa.Column[Any]) -> bool:
    """Whether the values of ``column`` are (nearly) all different from row to row: its ``info``
    says so (``{"distinct": True}``: names, descriptions, URLs, ISRC/UPC/EAN codes; ``False`` overrides
    the rules), it is its table's whole primary key or ``unique``, or it holds JSON objects (``raw``:
    one document per row)."""
    given = column.info.get("distinct")
    if given is not None:
        return bool(given)
    if column.unique or (column.primary_key and len(column.table.primary_key.columns) == 1):
        return True
    return isinstance(_base_type(column.type), sa.JSON) and "list_of" not in column.info


def parquet_leaves(field: pa.Field[Any]) -> list[str]:
    """The Parquet column paths of an Arrow field, as the writer names them (lists: ``name.list.element``)."""
    if pa.types.is_list(field.type):
        element: pa.Field[Any] = cast(Any, field.type).value_field
        return [f"{field.name}.list.{leaf}" for leaf in parquet_leaves(element.with_name("element"))]
    return [field.name]


def dictionary_columns(table: sa.Table, *, with_raw: bool = False, include_gone: bool = False) -> list[str]:
    """The Parquet columns (leaf paths) of ``table`` written with dictionary encoding: every column but
    those of :func:`distinct_values`. A dictionary pays where values repeat (album ids, types, dates,
    markets, genres, copyrights, numbers, timestamps); on a column of distinct values it is CPU spent
    hashing every value for a dictionary the writer drops at 1 MiB anyway (falling back to plain), and a
    bigger file."""
    columns = exported_columns(table, with_raw=with_raw, include_gone=include_gone)
    schema = arrow_schema(table, with_raw=with_raw, include_gone=include_gone)
    return [
        leaf
        for column, field in zip(columns, schema, strict=True)
        if not distinct_values(column)
        for leaf in parquet_leaves(field)
    ]


def current_rows(table: sa.Table) -> list[sa.ColumnElement[bool]]:
    """Conditions that leave out gone rows: the row's own ``gone_at`` is set, or the entity it belongs
    to (a column with ``info={"belongs_to": <table>}``) is gone. Rows naming an entity the database does
    not hold are kept."""
    where: list[sa.ColumnElement[bool]] = []
    if GONE_COLUMN in table.c:
        where.append(table.c[GONE_COLUMN].is_(None))
    for column in table.columns:
        parent = table.metadata.tables.get(column.info.get("belongs_to", ""))
        if parent is None or GONE_COLUMN not in parent.c or len(parent.primary_key.columns) != 1:
            continue
        (key,) = parent.primary_key.columns
        where.append(~sa.exists().where(key == column, parent.c[GONE_COLUMN].is_not(None)))
    return where


def _json_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):  # a driver that hands JSON back undecoded
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _converter(column: sa.Column[Any]) -> Callable[[Any], Any] | None:
    """How to turn a database value of ``column`` into what ``pa.array`` takes (None: as it is)."""
    t = _base_type(column.type)
    if not isinstance(t, sa.JSON):
        return None
    element = column.info.get("list_of")
    if element is None:
        return _json_text
    if isinstance(_base_type(element), sa.JSON):  # a list of objects: each object as JSON text

        def objects(value: Any) -> Any:
            value = json.loads(value) if isinstance(value, str) else value
            return None if value is None else [_json_text(v) for v in value]

        return objects
    return lambda value: json.loads(value) if isinstance(value, str) else value


# --------------------------------------------------------------------------------------------------
# Reading: database -> Arrow record batches


def _selected(column: sa.Column[Any]) -> sa.ColumnElement[Any]:
    """JSON objects (``raw``) are read as the text the database holds: no parsing and re-serialising."""
    if isinstance(_base_type(column.type), sa.JSON) and "list_of" not in column.info:
        return sa.cast(column, sa.Text).label(column.name)
    return column


def select_tables(metadata: sa.MetaData, names: Sequence[str] | None) -> list[sa.Table]:
    """The tables to export: the named ones, or every table not starting with ``_``."""
    if not names:
        return [t for t in metadata.sorted_tables if not t.name.startswith("_")]
    unknown = [n for n in names if n not in metadata.tables]
    if unknown:
        known = ", ".join(sorted(t for t in metadata.tables if not t.startswith("_")))
        raise UsageError(f"unknown table {', '.join(unknown)}; tables: {known}")
    return [metadata.tables[n] for n in dict.fromkeys(names)]


def iter_batches(
    conn: sa.Connection,
    table: sa.Table,
    *,
    with_raw: bool = False,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    include_gone: bool = False,
) -> Iterator[pa.RecordBatch]:
    """Stream ``table`` as record batches of at most ``batch_rows`` rows, in primary key order
    (server-side cursor where the driver has one); gone rows only with ``include_gone``
    (:func:`current_rows`). On SQLite (``sqlite3``) and PostgreSQL (``psycopg``) the driver's own cursor
    is read column by column and converted in Arrow (:func:`_column_reader`); elsewhere through
    SQLAlchemy's rows."""
    columns = exported_columns(table, with_raw=with_raw, include_gone=include_gone)
    schema = arrow_schema(table, with_raw=with_raw, include_gone=include_gone)
    query = sa.select(*(_selected(c) for c in columns)).order_by(*table.primary_key.columns)
    if not include_gone:
        query = query.where(*current_rows(table))
    dialect = conn.dialect
    if (dialect.name, dialect.driver) in _RAW_DRIVERS:
        arrow = _adbc_postgresql(conn, query, columns) if dialect.name == "postgresql" else None
        if arrow is not None:
            log.info("reading %s through ADBC (adbc-driver-postgresql)", table.name)
            yield from _adbc_batches(arrow, query, columns, schema, batch_rows)
        else:
            log.info("reading %s through the %s cursor", table.name, dialect.driver)
            yield from _raw_batches(conn, query, columns, schema, batch_rows)
        return
    log.info("reading %s through SQLAlchemy rows (%s)", table.name, dialect.driver)
    converters = [_converter(c) for c in columns]
    result = conn.execution_options(yield_per=batch_rows).execute(query)
    for rows in result.partitions():
        values = list(zip(*rows, strict=True)) if rows else [() for _ in columns]
        arrays = [
            pa.array(col if conv is None else [conv(v) for v in col], type=f.type)
            for col, conv, f in zip(values, converters, schema, strict=True)
        ]
        yield pa.RecordBatch.from_arrays(arrays, schema=schema)


_RAW_DRIVERS = {("sqlite", "pysqlite"), ("postgresql", "psycopg")}


def _raw_batches(
    conn: sa.Connection,
    query: sa.Select[Any],
    columns: Sequence[sa.Column[Any]],
    schema: pa.Schema,
    batch_rows: int,
) -> Iterator[pa.RecordBatch]:
    """The rows of ``query`` through the DBAPI cursor of ``conn`` (same transaction, so the same
    snapshot): no ``Row`` objects, values converted a column at a time."""
    dialect = conn.dialect
    compiled = query.compile(dialect=dialect)
    params: Any = compiled.params
    if dialect.positional:
        params = tuple(compiled.params[k] for k in compiled.positiontup or ())
    conn.exec_driver_sql("SELECT 1").close()  # begins SQLAlchemy's transaction if not yet begun
    dbapi_conn: Any = conn.connection.driver_connection
    if dialect.name == "postgresql":  # a server-side cursor: rows arrive batch by batch
        cursor = dbapi_conn.cursor(name=f"lake_{uuid.uuid4().hex}")
        cursor.itersize = batch_rows
    else:
        cursor = dbapi_conn.cursor()
    try:
        cursor.execute(str(compiled), params)
        readers = [
            _column_reader(c, f.type, dialect, d[1])
            for c, f, d in zip(columns, schema, cursor.description, strict=True)
        ]
        while rows := cursor.fetchmany(batch_rows):
            values = list(zip(*rows, strict=True))
            arrays = [read(col) for read, col in zip(readers, values, strict=True)]
            yield pa.RecordBatch.from_arrays(arrays, schema=schema)
    except dialect.loaded_dbapi.Error as exc:  # what SQLAlchemy would have wrapped
        raise StorageError(f"reading the database failed: {db.redact(first_line(exc))}") from None
    finally:
        with contextlib.suppress(dialect.loaded_dbapi.Error):  # the connection may be closed already
            cursor.close()


def _adbc_simple(column: sa.Column[Any]) -> bool:
    """Whether ADBC's PostgreSQL types for ``column`` cast to the lake's exactly: text, integers,
    booleans, floats, timestamps, dates and JSON (lists included); not decimals, times, intervals,
    binary or UUIDs (those take the psycopg path)."""
    t = _base_type(column.type)
    if isinstance(t, sa.JSON):
        element = column.info.get("list_of")
        return element is None or isinstance(_base_type(element), sa.JSON | sa.String | sa.Integer)
    if isinstance(t, sa.Uuid | sa.Enum):
        return False
    return isinstance(t, sa.String | sa.Integer | sa.Boolean | sa.Float | sa.DateTime | sa.Date) and not (
        isinstance(t, sa.Numeric) and not isinstance(t, sa.Float)
    )


def _adbc_postgresql(conn: sa.Connection, query: sa.Select[Any], columns: Sequence[sa.Column[Any]]) -> Any:
    """An ADBC PostgreSQL connection (``adbc-driver-postgresql``, the ``lake`` extra) that sees what
    ``conn`` sees: its transaction imports ``conn``'s snapshot (``pg_export_snapshot``) and its
    ``search_path``. None (read through psycopg instead) when the driver is not installed, a column type
    has no exact Arrow match, or the connection cannot be made."""
    if not all(_adbc_simple(c) for c in columns):
        return None
    adbc_pg = _adbc_module()
    if adbc_pg is None:
        return None
    compiled = query.compile(dialect=conn.dialect)
    if compiled.params or "%" in str(compiled):  # written for psycopg's placeholders
        return None
    snapshot = conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one()
    search_path = conn.exec_driver_sql("SELECT current_setting('search_path')").scalar_one()
    url = conn.engine.url.set(drivername="postgresql")
    try:
        arrow = adbc_pg.connect(url.render_as_string(hide_password=False), autocommit=True)
    except adbc_pg.Error as exc:
        log.info("reading through psycopg: ADBC could not connect (%s)", db.redact(first_line(exc)))
        return None
    try:
        with arrow.cursor() as cur:
            cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cur.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
            cur.execute(f"SET LOCAL search_path TO {search_path}")
    except adbc_pg.Error as exc:
        arrow.close()
        log.info("reading through psycopg: ADBC could not share the snapshot (%s)", first_line(exc))
        return None
    return arrow


def _adbc_batches(
    arrow: Any, query: sa.Select[Any], columns: Sequence[sa.Column[Any]], schema: pa.Schema, batch_rows: int
) -> Iterator[pa.RecordBatch]:
    """The rows of ``query`` as Arrow from ADBC (PostgreSQL's binary COPY), cast to ``schema``, in
    slices of ``batch_rows``."""
    adbc_pg: Any = _adbc_module()
    from_list = {
        i: functools.partial(
            _list_column,
            target=f.type,
            objects=isinstance(_base_type(c.info["list_of"]), sa.JSON),
        )
        for i, (c, f) in enumerate(zip(columns, schema, strict=True))
        if pa.types.is_list(f.type)
    }
    sql = str(query.compile(dialect=cast("sa.Dialect", postgresql.dialect())))  # type: ignore[no-untyped-call]
    try:
        with arrow.cursor() as cur:
            cur.adbc_statement.set_options(**{"adbc.postgresql.batch_size_hint_bytes": str(ADBC_BATCH_BYTES)})
            cur.execute(sql)
            reader = cur.fetch_record_batch()
            with contextlib.closing(_read_ahead(reader, (adbc_pg.Error,))) as batches:
                yield from _cast_adbc(batches, from_list, schema, batch_rows)
    except adbc_pg.Error as exc:
        raise StorageError(f"reading the database failed: {db.redact(first_line(exc))}") from None
    finally:
        with contextlib.suppress(adbc_pg.Error):
            arrow.close()


def _cast_adbc(
    batches: Iterator[pa.RecordBatch],
    from_list: Mapping[int, Callable[[pa.Array[Any]], pa.Array[Any]]],
    schema: pa.Schema,
    batch_rows: int,
) -> Iterator[pa.RecordBatch]:
    """ADBC PostgreSQL batches cast to ``schema`` (lists parsed), in slices of ``batch_rows``."""
    for batch in batches:
        arrays = []
        for i, field in enumerate(schema):
            array = batch.column(i)
            if isinstance(array, pa.ExtensionArray):  # arrow.json: the JSON text
                array = array.storage
            if i in from_list:
                arrays.append(from_list[i](array))
            else:
                # same type: copied into Arrow's pool, so the driver's batch is freed at once (a row group
                # kept slices of whole driver batches alive, and peak RSS grew with the table)
                arrays.append(_own_copy(array) if array.type == field.type else array.cast(field.type))
        whole = pa.RecordBatch.from_arrays(arrays, schema=schema)
        for start in range(0, whole.num_rows, batch_rows):
            yield whole.slice(start, batch_rows)


def _read_ahead(
    reader: Any, errors: tuple[type[Exception], ...], *, depth: int = READ_AHEAD_BATCHES
) -> Generator[pa.RecordBatch, None, None]:
    """The batches of the Arrow ``reader`` (ADBC), up to ``depth`` of them read ahead by one thread
    while the caller converts and writes the ones before: the driver reads without the GIL, so the
    database side and Arrow/Parquet use two cores, and the reading goes on while a row group is being
    encoded. The driver's errors (``errors``, and Arrow's while streaming) are a :class:`StorageError`;
    after an error or the end nothing more is read. Closing the generator cancels the reads not begun,
    waits for the read in flight and closes ``reader``."""
    done = threading.Event()  # the end, an error, or the consumer stopped: read no more

    def next_batch() -> pa.RecordBatch | None:
        if done.is_set():
            return None
        try:
            return cast("pa.RecordBatch", reader.read_next_batch())
        except StopIteration:
            done.set()
            return None
        except BaseException:
            done.set()
            raise

    caught: tuple[type[Exception], ...] = (*errors, pa.ArrowException, OSError)
    pending: deque[Future[pa.RecordBatch | None]] = deque()
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="lake-read") as pool:  # one thread: reads in order
            try:
                pending.extend(pool.submit(next_batch) for _ in range(max(1, depth)))
                while True:
                    try:
                        batch = pending.popleft().result()
                    except caught as exc:
                        message = db.redact(_adbc_message(exc))
                        raise StorageError(f"reading the database failed: {message}") from None
                    if batch is None:
                        return
                    pending.append(pool.submit(next_batch))
                    yield batch
            finally:
                done.set()
                for future in pending:
                    future.cancel()
    finally:
        with contextlib.suppress(*caught):
            reader.close()


def _adbc_module() -> Any:
    """``adbc_driver_postgresql.dbapi``, or None when the ``lake`` extra's driver is not installed."""
    try:
        return importlib.import_module("adbc_driver_postgresql.dbapi")
    except ImportError:
        return None


def _adbc_message(exc: BaseException) -> str:
    """An ADBC error's first line without the driver's prefixes (``INVALID_ARGUMENT: [SQLite] Failed
    to prepare query: no such table: t`` -> ``no such table: t``)."""
    return _ADBC_PREFIX.sub("", first_line(exc))


_ADBC_PREFIX = re.compile(r"^(?:[A-Z_]+: )?(?:\[SQLite\] )?(?:Failed to \w+ query: )?")


# --------------------------------------------------------------------------------------------------
# SQLite as Arrow: adbc-driver-sqlite, one read transaction across the export's tables


def _adbc_sqlite_module() -> Any:
    """``adbc_driver_sqlite.dbapi``, or None when the ``lake`` extra's driver is not installed."""
    try:
        return importlib.import_module("adbc_driver_sqlite.dbapi")
    except ImportError:
        return None


def _sqlite_arrow_simple(column: sa.Column[Any], target: pa.DataType) -> bool:
    """Whether ADBC's SQLite values of ``column`` become the lake's exactly as the ``sqlite3`` path
    makes them: timestamps, dates and booleans (cast by Arrow on both paths, under any
    ``TypeDecorator``), text, integers, floats and JSON; not decimals, enums, UUIDs, intervals, times
    or binary, nor another ``TypeDecorator`` (whose result processing is Python)."""
    if isinstance(column.type, sa.Enum | sa.Uuid | sa.Interval):
        return False
    if pa.types.is_timestamp(target) or pa.types.is_date32(target) or pa.types.is_boolean(target):
        return True
    if isinstance(column.type, sa.types.TypeDecorator):
        return False
    t = _base_type(column.type)
    if isinstance(t, sa.JSON):
        return True
    if isinstance(t, sa.Numeric) and not isinstance(t, sa.Float):
        return False
    return bool(pa.types.is_string(target) or pa.types.is_integer(target) or pa.types.is_floating(target))


def _sqlite_arrow_query(
    table: sa.Table, dialect: sa.Dialect, *, with_raw: bool, include_gone: bool
) -> str | None:
    """The query ADBC reads ``table`` with, or None when a column has no exact path
    (:func:`_sqlite_arrow_simple`).

    The driver takes each column's Arrow type from the values of the first batch, and a column that is
    NULL there becomes int64 (the first text after it then fails). So a first row of typed literals
    (``''``, ``0``, ``0.0``; NULL in the key, which sorts it first) is put before the rows and dropped
    by :func:`_sqlite_arrow_batches`; ``ORDER BY`` on the whole ``UNION ALL`` keeps primary key order
    (SQLite merges the literal row into the scan of the key's index, no sort). JSON objects are read
    ``CAST(... AS TEXT)`` (:func:`_selected`): the affinity of a JSON column is NUMERIC, so SQLite may
    hold a JSON number as a number; other text columns hold text only (TEXT affinity; SQLAlchemy writes
    timestamps, dates and lists as text)."""
    columns = exported_columns(table, with_raw=with_raw, include_gone=include_gone)
    schema = arrow_schema(table, with_raw=with_raw, include_gone=include_gone)
    keys = list(table.primary_key.columns)
    if not keys or any(k not in columns for k in keys):
        return None
    if not all(_sqlite_arrow_simple(c, f.type) for c, f in zip(columns, schema, strict=True)):
        return None
    query = sa.select(*(_selected(c) for c in columns))
    if not include_gone:
        query = query.where(*current_rows(table))
    compiled = query.compile(dialect=dialect)
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


@dataclass
class _SqliteArrow:
    """A read-only ADBC connection to the SQLite file, in one read transaction (begun by its first
    read, before any table is read), and the query of each table."""

    connection: Any
    queries: dict[str, str]


def _sqlite_arrow(
    engine: sa.Engine, tables: Sequence[sa.Table], *, with_raw: bool, include_gone: bool
) -> _SqliteArrow | None:
    """An ADBC SQLite connection (``adbc-driver-sqlite``, the ``lake`` extra) for the export of
    ``tables``, or None (read through ``sqlite3`` instead): the driver is not installed, a column has
    no exact Arrow path, the database is not a file, the file is open in this process otherwise, or
    ADBC cannot open it.

    The driver has a SQLite library of its own. Two SQLite libraries with the same file open in one
    process break each other's POSIX locks (closing a file drops every lock of the process on it), so
    the engine's idle connections are closed first, and ADBC is used only when no other file
    descriptor of this process is on the database or its ``-wal``/``-shm``. The file is opened as
    :func:`db.open_readonly` opens it: ``mode=rw`` with ``PRAGMA query_only`` (so that, the last
    connection of a WAL database, it removes the ``-wal`` and ``-shm`` files when closed, as
    ``sqlite3`` does), and in a read-only directory where that fails (no ``-shm`` can be made)
    ``mode=ro&immutable=1``."""
    module = _adbc_sqlite_module()
    if module is None:
        return None
    queries: dict[str, str] = {}
    for table in tables:
        sql = _sqlite_arrow_query(table, engine.dialect, with_raw=with_raw, include_gone=include_gone)
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
            return _SqliteArrow(connection, queries)
        except module.Error as exc:
            if connection is not None:
                _close_adbc(connection, module)
            problem = _adbc_message(exc)
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


def _close_adbc(connection: Any, module: Any) -> None:
    with contextlib.suppress(module.Error):
        connection.close()


def _sqlite_arrow_batches(
    arrow: _SqliteArrow, table: sa.Table, *, with_raw: bool, batch_rows: int, include_gone: bool
) -> Iterator[pa.RecordBatch]:
    """The rows of ``table`` as Arrow from ADBC SQLite, in the connection's read transaction: the
    typed first row of :func:`_sqlite_arrow_query` dropped, each column cast to the lake's type (text
    timestamps and dates, integer booleans, as the ``sqlite3`` path does) and list columns parsed."""
    module: Any = _adbc_sqlite_module()
    columns = exported_columns(table, with_raw=with_raw, include_gone=include_gone)
    schema = arrow_schema(table, with_raw=with_raw, include_gone=include_gone)
    convert = [_arrow_converter(c, f.type) for c, f in zip(columns, schema, strict=True)]
    log.info("reading %s through ADBC (adbc-driver-sqlite)", table.name)
    with arrow.connection.cursor() as cur:
        try:
            rows = str(max(ADBC_SQLITE_BATCH_ROWS, batch_rows))
            cur.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": rows})
            cur.execute(arrow.queries[table.name])
            reader = cur.fetch_record_batch()
        except module.Error as exc:
            raise StorageError(f"reading the database failed: {_adbc_message(exc)}") from None
        batches = _read_ahead(reader, (module.Error,))
        with contextlib.closing(batches):
            first = True
            carry: pa.RecordBatch | None = None  # the rows of the last read that did not fill a batch
            for batch in batches:
                if first:
                    _check_typed_row(batch, table)
                    batch, first = batch.slice(1), False
                if not batch.num_rows:
                    continue
                arrays = [conv(batch.column(i)) for i, conv in enumerate(convert)]
                whole = pa.RecordBatch.from_arrays(arrays, schema=schema)
                if carry is not None:  # batches of exactly batch_rows, as the other paths give
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


def _check_typed_row(batch: pa.RecordBatch, table: sa.Table) -> None:
    """The first row read is the typed row of :func:`_sqlite_arrow_query` (NULL in every key column,
    which no row of the table has), not a row of the table."""
    keys = [batch.schema.get_field_index(k.name) for k in table.primary_key.columns]
    if not batch.num_rows or any(batch.column(i)[0].is_valid for i in keys):
        raise StorageError(f"reading {table.name} failed: the first row is not the typed row")


def _arrow_converter(column: sa.Column[Any], target: pa.DataType) -> Callable[[pa.Array[Any]], pa.Array[Any]]:
    """How an ADBC SQLite column (text, int64 or double) becomes ``target``."""
    if pa.types.is_list(target):
        objects = isinstance(_base_type(column.info["list_of"]), sa.JSON)
        return functools.partial(_list_column, target=target, objects=objects)

    def cast_to(array: pa.Array[Any]) -> pa.Array[Any]:
        if array.null_count == len(array):  # int64 when every value of a batch is NULL
            return cast("pa.Array[Any]", pa.nulls(len(array), type=cast(Any, target)))
        if pa.types.is_timestamp(target) and pa.types.is_string(array.type):
            array = array.cast(pa.timestamp(target.unit))  # naive text is UTC (the project's convention)
        if array.type == target:  # copied into Arrow's pool: the driver's batch is freed at once
            return _own_copy(array)
        return cast("pa.Array[Any]", array.cast(target))

    return cast_to


def _own_copy(array: pa.Array[Any]) -> pa.Array[Any]:
    """``array`` copied into Arrow's memory pool (pyarrow 16 and later; before, as it is)."""
    try:
        return cast("pa.Array[Any]", cast(Any, array).copy_to(pa.default_cpu_memory_manager()))
    except AttributeError:
        return array


def _json_values(array: pa.Array[Any]) -> list[Any]:
    """The values of an Arrow array of JSON texts, parsed by one ``orjson`` call (the texts joined in
    Arrow as ``[t1,t2,...]``)."""
    texts: Any = pc.fill_null(cast(Any, array).cast(pa.large_string()), "null")
    whole = pa.LargeListArray.from_arrays(pa.array([0, len(texts)], pa.int64()), texts)
    joined: Any = pc.binary_join(whole, pa.scalar(",", pa.large_string()))
    parsed = orjson.loads("[" + str(joined[0].as_py()) + "]")
    if len(parsed) != len(array):  # not one JSON value per text: one at a time
        parsed = [None if t is None else orjson.loads(t) for t in array.to_pylist()]
    return cast("list[Any]", parsed)


def _column_reader(
    column: sa.Column[Any], target: pa.DataType, dialect: sa.Dialect, coltype: Any
) -> Callable[[Sequence[Any]], pa.Array[Any]]:
    """How to turn the driver's values of ``column`` (one batch) into an Arrow array of ``target``: text
    timestamps and dates (SQLite) and integer booleans are cast by Arrow, list columns parsed by orjson,
    other types go through SQLAlchemy's own result processor."""

    def untyped(values: Sequence[Any]) -> pa.Array[Any]:
        array = pa.array(values)  # all None: a null array, which casts to any type
        if pa.types.is_timestamp(target) and pa.types.is_string(array.type):
            array = array.cast(pa.timestamp(target.unit))  # naive text is UTC (the project's convention)
        return cast("pa.Array[Any]", array.cast(target))

    if pa.types.is_timestamp(target) or pa.types.is_boolean(target) or pa.types.is_date32(target):
        return untyped
    convert = _converter(column)
    if convert is not None and pa.types.is_list(target):
        objects = isinstance(_base_type(column.info["list_of"]), sa.JSON)
        return functools.partial(_list_array, target=target, objects=objects)
    if convert is not None:
        return lambda values: pa.array([convert(v) for v in values], type=target)
    process = column.type.dialect_impl(dialect).result_processor(dialect, coltype)
    if process is None:
        return lambda values: pa.array(values, type=target)
    return lambda values: pa.array([process(v) for v in values], type=target)


def _list_array(values: Sequence[Any], *, target: pa.DataType, objects: bool) -> pa.Array[Any]:
    """A list column's values: JSON texts parsed by Arrow (:func:`_parse_lists`), else by orjson in one
    call (``[t1,t2,...]``); a driver may hand them over parsed already. Lists of objects keep each
    object as JSON text."""
    if not objects:
        with contextlib.suppress(pa.ArrowException):  # not all texts: parsed in Python
            parsed_here = _parse_lists(pa.array(values, type=pa.string()), target)
            if parsed_here is not None:
                return parsed_here
    parsed: list[Any] = []
    if all(v is None or v.__class__ is str for v in values):
        parsed = orjson.loads("[" + ",".join("null" if v is None else v for v in values) + "]")
    if len(parsed) != len(values):  # not one JSON value per text (or not all texts): one at a time
        parsed = [orjson.loads(v) if isinstance(v, str | bytes) else v for v in values]
    if objects:
        parsed = [None if v is None else [_json_text(o) for o in v] for v in parsed]
    return pa.array(parsed, type=target)


def _arrow_parses(target: pa.DataType) -> bool:
    """Whether :func:`_parse_lists` takes lists of ``target``'s elements: text and integers."""
    element: pa.DataType = cast(Any, target).value_type
    return bool(pa.types.is_string(element) or pa.types.is_integer(element))


def _parse_lists(texts: pa.Array[Any], target: pa.DataType) -> pa.Array[Any] | None:
    """JSON texts of a list column parsed by Arrow's JSON reader, without a Python object per value:
    each text becomes the line ``{"v":TEXT}`` of one buffer read with ``target`` as the explicit type.
    None when that does not give exactly one value of ``target`` per text (a text with a line break,
    not a list of that element type, not JSON): the caller then parses them with orjson."""
    if not _arrow_parses(target):
        return None
    n = len(texts)
    if texts.null_count == n:
        return cast("pa.Array[Any]", pa.nulls(n, type=cast(Any, target)))
    if pa.types.is_string(cast(Any, target).value_type):
        split = _split_plain_lists(texts)
        if split is not None:
            return cast("pa.Array[Any]", split.cast(target))
    large: Any = cast(Any, texts).cast(pa.large_string())
    if pc.any(pc.match_substring_regex(large, "[\r\n]")).as_py():
        return None
    text = functools.partial(pa.scalar, type=pa.large_string())
    lines = pc.binary_join_element_wise(text('{"v":'), pc.fill_null(large, text("null")), text("}"), text(""))
    whole: Any = pa.LargeListArray.from_arrays(pa.array([0, n], pa.int64()), lines)
    joined: Any = pc.binary_join(whole, text("\n"))
    data: pa.Buffer = joined[0].as_buffer()
    try:
        parsed = pa_json.read_json(
            cast(Any, pa.BufferReader(data)),
            read_options=pa_json.ReadOptions(use_threads=False, block_size=data.size + 1),
            parse_options=pa_json.ParseOptions(
                explicit_schema=pa.schema([("v", target)]), unexpected_field_behavior="error"
            ),
        )
    except pa.ArrowException:  # not JSON, or not lists of the element type
        return None
    if parsed.num_rows != n:
        return None
    column: Any = parsed.column(0)
    return cast("pa.Array[Any]", column.combine_chunks())


# a JSON list of strings without escapes, written compact (orjson) or with ", " (json.dumps, jsonb)
_PLAIN_VALUE = r'"[^"\\\x00-\x1f]*"'
_PLAIN_LISTS = {sep: rf"^\[(?:{_PLAIN_VALUE}(?:{sep}{_PLAIN_VALUE})*)?\]$" for sep in (",", ", ")}


def _split_plain_lists(texts: pa.Array[Any]) -> Any:
    """Lists of plain strings (every text ``["a","b"]`` and ``[]``, or every one ``["a", "b"]`` and
    ``[]``; no escapes, so no ``"`` inside a value) split by Arrow's string kernels, faster still than
    its JSON reader; None when a text is not such a list. One separator for all: a ``"`` is then always
    a value's own quote, so splitting from the left finds exactly the separators (a value ``", "``
    between compact separators makes both occur: None). The ``[""]`` that splitting gives for ``[]``
    is dropped through the offsets (``if_else`` builds list arrays value by value: slower)."""
    separator = ", " if pc.any(pc.match_substring(texts, '", "')).as_py() else ","
    if not pc.all(pc.match_substring_regex(texts, _PLAIN_LISTS[separator]), min_count=0).as_py():
        return None
    inner: Any = pc.utf8_slice_codeunits(texts, 2, -2)  # a","b (values hold no quote)
    lists: Any = pc.split_pattern(inner, f'"{separator}"')
    is_empty: Any = pc.equal(texts, pa.scalar("[]"))  # split gives [""] for these
    empty: Any = pc.fill_null(is_empty, False)
    if not pc.any(empty).as_py():
        return lists
    lengths: Any = pc.subtract(pc.fill_null(pc.list_value_length(lists), 0), empty.cast(pa.int32()))
    offsets = pa.concat_arrays([pa.array([0], pa.int32()), pc.cumulative_sum(lengths).cast(pa.int32())])
    values = pc.filter(pc.list_flatten(lists), pc.invert(pc.take(empty, pc.list_parent_indices(lists))))
    return pa.ListArray.from_arrays(offsets, values, type=lists.type, mask=pc.is_null(texts))


def _list_column(array: pa.Array[Any], *, target: pa.DataType, objects: bool) -> pa.Array[Any]:
    """A list column read as Arrow JSON texts (ADBC): parsed by Arrow, else by orjson."""
    if not objects:
        parsed = _parse_lists(array, target)
        if parsed is not None:
            return parsed
    return _list_array(_json_values(array), target=target, objects=objects)


# --------------------------------------------------------------------------------------------------
# Writing: record batches -> one file of the chosen format


def file_name(fmt: str, compression: str) -> str:
    """``part-00000.parquet``, ``part-00000.csv``, ``part-00000.jsonl.zst``, ..."""
    suffix = "" if fmt == "parquet" or compression == "none" else ".zst"
    return f"part-00000.{fmt}{suffix}"


def _text_column(array: pa.Array[Any]) -> pa.Array[Any]:
    """CSV has no lists: a list column is written as its JSON text."""
    return pa.array([_json_text(v) for v in array.to_pylist()], type=pa.string())


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return str(value)  # durations


def write_file(
    sink: pa.NativeFile,
    schema: pa.Schema,
    batches: Iterator[pa.RecordBatch],
    *,
    fmt: str,
    compression: str,
    row_group_rows: int = DEFAULT_ROW_GROUP_ROWS,
    on_batch: Callable[[int], None] = lambda rows: None,
    dictionary: Sequence[str] | None = None,
) -> int:
    """Write ``batches`` to ``sink``; return the row count. Parquet row groups gather batches until they
    hold at least ``row_group_rows`` rows or :data:`ROW_GROUP_BYTES` of data; ``dictionary``: the Parquet
    columns (leaf paths, :func:`dictionary_columns`) written with dictionary encoding (None: all)."""
    rows = 0
    if fmt == "parquet":
        with pq.ParquetWriter(
            sink,
            schema,
            compression=cast(Any, compression),
            use_deprecated_int96_timestamps=INT96_TIMESTAMPS,
            use_dictionary=cast(Any, True if dictionary is None else list(dictionary)),  # stubs: bool only
        ) as writer:
            pending: list[pa.RecordBatch] = []
            pending_rows = pending_bytes = 0
            for batch in batches:
                pending.append(batch)
                pending_rows += batch.num_rows
                pending_bytes += batch.nbytes
                rows += batch.num_rows
                if pending_rows >= row_group_rows or pending_bytes >= ROW_GROUP_BYTES:
                    writer.write_table(pa.Table.from_batches(pending, schema), row_group_size=pending_rows)
                    pending, pending_rows, pending_bytes = [], 0, 0
                    # the row group's memory back to the system: without it the peak RSS grew with the
                    # number of row groups (1M tracks: 269 MiB against 242 MiB, same speed)
                    pa.default_memory_pool().release_unused()
                on_batch(rows)
            if pending_rows:
                writer.write_table(pa.Table.from_batches(pending, schema), row_group_size=pending_rows)
        return rows
    stream = pa.CompressedOutputStream(sink, "zstd") if compression == "zstd" else sink
    try:
        if fmt == "csv":
            list_fields = [i for i, f in enumerate(schema) if pa.types.is_list(f.type)]
            csv_schema = schema
            for i in list_fields:
                csv_schema = csv_schema.set(i, schema.field(i).with_type(pa.string()))
            with pa_csv.CSVWriter(cast(Any, stream), csv_schema) as csv_writer:
                for batch in batches:
                    for i in list_fields:
                        batch = batch.set_column(i, csv_schema.field(i), _text_column(batch.column(i)))
                    csv_writer.write_batch(batch)
                    rows += batch.num_rows
                    on_batch(rows)
        else:
            for batch in batches:
                lines = (
                    json.dumps(row, ensure_ascii=False, separators=(",", ":"), default=_json_default)
                    for row in batch.to_pylist()
                )
                stream.write("".join(line + "\n" for line in lines).encode("utf-8"))
                rows += batch.num_rows
                on_batch(rows)
    finally:
        if stream is not sink:
            stream.close()
    return rows


# --------------------------------------------------------------------------------------------------
# The lake: where files go, and the atomic swap of a partition


@dataclass(frozen=True)
class Lake:
    """A lake root: ``fs`` and ``root`` (a path in ``fs``: ``bucket/prefix`` on S3), ``uri`` to show;
    ``s3`` is a boto3 client for what pyarrow's filesystem lacks (multipart copies, marker-free deletes)."""

    fs: pafs.FileSystem
    root: str
    uri: str
    s3: S3Client | None = None

    @property
    def is_s3(self) -> bool:
        return self.s3 is not None


def _s3_endpoint() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def _s3_region() -> str | None:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None


def s3_filesystem() -> pafs.S3FileSystem:
    """An S3 filesystem from the usual AWS variables; ``AWS_ENDPOINT_URL(_S3)`` for S3-compatible stores."""
    endpoint, region = _s3_endpoint(), _s3_region()
    kwargs: dict[str, Any] = {}
    if endpoint:
        parsed = urlparse(endpoint)
        kwargs["endpoint_override"] = parsed.netloc or parsed.path
        kwargs["scheme"] = parsed.scheme or "https"
    if region:
        kwargs["region"] = region
    return pafs.S3FileSystem(**kwargs)


def open_lake(to: str, *, create: bool = True, filesystem: pafs.FileSystem | None = None) -> Lake:
    """Parse ``--to`` (a directory, ``file://`` or ``s3://bucket/prefix``) and check it can be written."""
    parsed = urlparse(to)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise UsageError(f"--to {to!r}: an S3 URL needs a bucket (s3://bucket/prefix)")
        root = f"{parsed.netloc}/{parsed.path.strip('/')}".rstrip("/")
        fs = filesystem or s3_filesystem()
        if create:
            try:
                bucket = fs.get_file_info(parsed.netloc)
            except OSError as exc:
                raise SpotifyCatalogError(f"cannot reach s3://{parsed.netloc}: {first_line(exc)}") from None
            if bucket.type != pafs.FileType.Directory:
                raise UsageError(f"--to {to}: bucket {parsed.netloc!r} does not exist")
        client = boto3.client("s3", endpoint_url=_s3_endpoint(), region_name=_s3_region())
        return Lake(fs=fs, root=root, uri=f"s3://{root}", s3=client)
    if parsed.scheme not in ("", "file") or (parsed.scheme == "" and "://" in to):
        raise UsageError(f"--to {to!r}: give a directory or an s3://bucket/prefix URL")
    path = Path(parsed.path if parsed.scheme == "file" else to).expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise UsageError(f"--to {path}: not a directory")
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SpotifyCatalogError(f"cannot create {path}: {exc.strerror or exc}") from None
    return Lake(fs=filesystem or pafs.LocalFileSystem(), root=str(path), uri=str(path))


def _db_error(exc: sa.exc.SQLAlchemyError) -> str:
    """The driver's own message, one line (never the URL's credentials)."""
    return db.describe_error(exc)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two directories in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False if unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    rc = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    errno = ctypes.get_errno()
    log.debug("renameat2 exchange unsupported (%s); falling back to two renames", os.strerror(errno))
    return False


def _publish_local(staged: Path, final: Path) -> None:
    """Put the staged partition directory in place of ``final``; the old one is removed after."""
    final.parent.mkdir(parents=True, exist_ok=True)
    if not final.exists():
        staged.rename(final)
        return
    if not _exchange(staged, final):  # two renames: for an instant the partition is absent
        old = staged.with_name(staged.name + ".old")
        try:
            final.rename(old)
            staged.rename(final)
        except BaseException:  # e.g. SIGTERM between the renames: the old partition goes back
            if old.exists() and not final.exists():
                old.rename(final)
            raise
        staged = old
    shutil.rmtree(staged)


def _s3_keys(client: S3Client, prefix_path: str) -> list[str]:
    """Keys below ``bucket/prefix/``."""
    bucket, prefix = prefix_path.split("/", 1)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix.rstrip("/") + "/")
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def _s3_delete(client: S3Client, bucket: str, keys: Sequence[str]) -> None:
    for start in range(0, len(keys), 1000):
        chunk: list[ObjectIdentifierTypeDef] = [{"Key": k} for k in keys[start : start + 1000]]
        client.delete_objects(Bucket=bucket, Delete={"Objects": chunk, "Quiet": True})


def _publish_s3(client: S3Client, staged: str, final: str) -> None:
    """Copy every staged object over its final key (each copy is atomic, multipart above 5 GB), then
    delete the keys of the partition that the new export did not write."""
    bucket, final_prefix = final.split("/", 1)
    names = {key.rsplit("/", 1)[1]: key for key in _s3_keys(client, staged)}
    if not names:  # never empty a partition because the staged files went missing
        raise SpotifyCatalogError(f"the staged files of s3://{final} are gone (removed by another export?)")
    for name, key in sorted(names.items()):
        client.copy({"Bucket": bucket, "Key": key}, bucket, f"{final_prefix}/{name}")
    stale = [k for k in _s3_keys(client, final) if k.rsplit("/", 1)[1] not in names]
    _s3_delete(client, bucket, stale)


def _publishing(
    lake: Lake, snapshot_date: date, *, clock: Callable[[], float], sleep: Callable[[float], None]
) -> contextlib.AbstractContextManager[lake_lock.Held]:
    """The lock of ``snapshot_date`` in ``lake`` (``TO/_locks/<date>``), held while publishing: exports
    of one date publish one after the other (:mod:`spotify_catalog.lake_lock`)."""
    name = snapshot_date.isoformat()
    what = partition_dir(lake.uri.rstrip("/"), "<table>", snapshot_date)
    if lake.s3 is not None:
        bucket, _, prefix = lake.root.partition("/")
        key = f"{prefix}/{lake_lock.LOCKS}/{name}" if prefix else f"{lake_lock.LOCKS}/{name}"
        return lake_lock.S3Lease(lake.s3, bucket, key, clock=clock, sleep=sleep).holding(what)
    return lake_lock.local_lock(Path(lake.root) / lake_lock.LOCKS / name, what=what, sleep=sleep)


# --------------------------------------------------------------------------------------------------
# The export


@dataclass
class ExportedTable:
    """One table written: where, how many rows."""

    table: str
    rows: int
    uri: str


@dataclass
class _Staged:
    table: str
    rows: int
    staged_dir: str
    final_dir: str
    name: str


def partition_dir(root: str, table: str, snapshot_date: date) -> str:
    return f"{root}/{table}/{PARTITION}={snapshot_date.isoformat()}"


def check_options(fmt: str, compression: str) -> None:
    """Reject combinations that cannot be written."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}; formats: {', '.join(FORMATS)}")
    if compression not in COMPRESSIONS:
        raise UsageError(f"unknown compression {compression!r}; choose {', '.join(COMPRESSIONS)}")
    if fmt != "parquet" and compression == "snappy":
        raise UsageError(f"{fmt} files take --compression zstd or none (snappy is for Parquet)")


def export(
    engine: sa.Engine,
    metadata: sa.MetaData,
    lake: Lake,
    snapshot_date: date,
    *,
    tables: Sequence[str] | None = None,
    fmt: str = "parquet",
    compression: str = "zstd",
    with_raw: bool = False,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    row_group_rows: int = DEFAULT_ROW_GROUP_ROWS,
    progress: Progress | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    include_gone: bool = False,
    clock: Callable[[], float] = systime.monotonic,
    sleep: Callable[[float], None] = systime.sleep,
) -> list[ExportedTable]:
    """Export ``tables`` (default: all but bookkeeping) of the database to ``lake`` as the partition
    ``dt=snapshot_date``; gone rows (and the ``gone_at`` column) only with ``include_gone``. All tables
    are staged first and swapped in only when all are complete; on any error (``KeyboardInterrupt`` and
    so SIGTERM too) the staging area is removed, its multipart uploads aborted, and the lake is as it
    was. Staging left by dead exports is removed first (:func:`remove_stale_staging`). Exports of one
    date into one lake publish one after the other, so that they end as if run one after the other
    (:func:`_publishing`; ``clock``, monotonic seconds, and ``sleep`` serve the waiting for its lock)."""
    check_options(fmt, compression)
    chosen = select_tables(metadata, tables)
    check_database(engine, chosen)
    remove_stale_staging(lake, now=now())
    staging_root = f"{lake.root}/{STAGING}/{snapshot_date.isoformat()}-{uuid.uuid4().hex[:12]}"
    name = file_name(fmt, compression)
    report = progress or (lambda table, rows: None)
    staged: list[_Staged] = []
    try:
        with _reading(
            engine, chosen, with_raw=with_raw, batch_rows=batch_rows, include_gone=include_gone
        ) as read:
            for table in chosen:
                staged_dir = partition_dir(staging_root, table.name, snapshot_date)
                if not lake.is_s3:
                    Path(staged_dir).mkdir(parents=True)
                log.info("exporting %s to %s", table.name, staged_dir)
                with lake.fs.open_output_stream(f"{staged_dir}/{name}", compression=None) as sink:
                    rows = write_file(
                        sink,
                        arrow_schema(table, with_raw=with_raw, include_gone=include_gone),
                        read(table),
                        fmt=fmt,
                        compression=compression,
                        row_group_rows=row_group_rows,
                        on_batch=functools.partial(report, table.name),
                        dictionary=dictionary_columns(table, with_raw=with_raw, include_gone=include_gone),
                    )
                report(table.name, rows)
                final_dir = partition_dir(lake.root, table.name, snapshot_date)
                staged.append(_Staged(table.name, rows, staged_dir, final_dir, name))
        with _publishing(lake, snapshot_date, clock=clock, sleep=sleep) as lock:
            for item in staged:
                lock.check()
                if lake.s3 is not None:
                    _publish_s3(lake.s3, item.staged_dir, item.final_dir)
                else:
                    _publish_local(Path(item.staged_dir), Path(item.final_dir))
                log.info("published %s (%d rows)", item.final_dir, item.rows)
    except sa.exc.SQLAlchemyError as exc:
        raise StorageError(f"reading the database failed: {_db_error(exc)}") from None
    except (OSError, BotoCoreError, ClientError) as exc:
        raise SpotifyCatalogError(f"writing to {lake.uri} failed: {first_line(exc)}") from None
    finally:
        _remove_staging(lake, staging_root)
    return [
        ExportedTable(
            s.table,
            s.rows,
            f"{partition_dir(lake.uri.rstrip('/'), s.table, snapshot_date)}/{s.name}",
        )
        for s in staged
    ]


@contextlib.contextmanager
def _reading(
    engine: sa.Engine, tables: Sequence[sa.Table], *, with_raw: bool, batch_rows: int, include_gone: bool
) -> Iterator[Callable[[sa.Table], Iterator[pa.RecordBatch]]]:
    """How the export reads its tables, every one as of the same moment: on SQLite one ADBC connection
    in one read transaction (:func:`_sqlite_arrow`) where it can be used, else one SQLAlchemy
    connection in one transaction (:func:`_snapshot_connection`, :func:`iter_batches`)."""
    arrow = None
    if engine.dialect.name == "sqlite":
        arrow = _sqlite_arrow(engine, tables, with_raw=with_raw, include_gone=include_gone)
    if arrow is not None:
        try:
            yield functools.partial(
                _sqlite_arrow_batches,
                arrow,
                with_raw=with_raw,
                batch_rows=batch_rows,
                include_gone=include_gone,
            )
        finally:
            _close_adbc(arrow.connection, _adbc_sqlite_module())
        return
    with _snapshot_connection(engine) as conn:
        yield functools.partial(
            iter_batches, conn, with_raw=with_raw, batch_rows=batch_rows, include_gone=include_gone
        )


def _snapshot_connection(engine: sa.Engine) -> sa.Connection:
    """A connection whose one transaction reads every table as of the same moment: REPEATABLE READ on
    PostgreSQL and MySQL/MariaDB, an explicit ``BEGIN`` on SQLite (a snapshot in WAL mode; in
    rollback-journal mode writers wait until the export is done)."""
    conn = engine.connect()
    if engine.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN")
    elif engine.dialect.name in ("postgresql", "mysql", "mariadb"):
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
    return conn


def check_database(engine: sa.Engine, tables: Sequence[sa.Table]) -> None:
    """The tables exist, and not all of them are empty: an export of an empty database would replace a
    good snapshot with empty files (a wrong ``--db`` is the likelier story). Tables of this program's
    schema need a database of it, not another program's nor a newer schema (:func:`db.schema_version`)."""
    where = db.redact(engine.url)
    try:
        if any(t.metadata is catalog_schema.metadata for t in tables):
            with engine.connect() as conn:
                db.schema_version(conn)
        present = set(sa.inspect(engine).get_table_names())
        missing = [t.name for t in tables if t.name not in present]
        if missing:
            raise UsageError(f"the database {where} has no table {', '.join(missing)} (crawl into it first)")
        with engine.connect() as conn:
            any_row = (sa.select(sa.literal(1)).select_from(t).limit(1) for t in tables)
            empty = all(conn.execute(query).first() is None for query in any_row)
    except sa.exc.SQLAlchemyError as exc:
        raise StorageError(f"cannot open the database {where}: {_db_error(exc)}") from None
    if empty:
        what = ", ".join(t.name for t in tables) if len(tables) <= 3 else f"the {len(tables)} tables"
        raise UsageError(f"nothing to export: {what} in {where} hold no rows (crawl into it first)")


def _remove_staging(lake: Lake, staging_root: str) -> None:
    """Best effort: a failed removal leaves only hidden ``_staging`` objects behind (removed by a later
    export once they are an hour old)."""
    try:
        if lake.s3 is not None:
            bucket, prefix = staging_root.split("/", 1)
            for upload in _s3_uploads(lake.s3, bucket, prefix + "/"):
                _s3_abort(lake.s3, bucket, upload)
            _s3_delete(lake.s3, bucket, _s3_keys(lake.s3, staging_root))
        else:
            shutil.rmtree(staging_root, ignore_errors=True)
            with contextlib.suppress(OSError):
                Path(staging_root).parent.rmdir()  # _staging itself, when no other export runs
    except (OSError, BotoCoreError, ClientError) as exc:
        log.warning("could not remove the staging area %s: %s", staging_root, first_line(exc))


def _s3_uploads(client: S3Client, bucket: str, prefix: str) -> list[MultipartUploadTypeDef]:
    """Incomplete multipart uploads of keys starting with ``prefix``."""
    pages = client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=prefix)
    return [upload for page in pages for upload in page.get("Uploads", [])]


def _s3_abort(client: S3Client, bucket: str, upload: MultipartUploadTypeDef) -> None:
    client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])


def _s3_upload_activity(
    client: S3Client, bucket: str, upload: MultipartUploadTypeDef, cutoff: datetime
) -> datetime:
    """When an upload last moved: its newest part, or when it was initiated (parts are listed only for
    an upload initiated before ``cutoff``: a live upload of a large file can be older than that)."""
    latest = upload["Initiated"]
    if latest < cutoff:
        pages = client.get_paginator("list_parts").paginate(
            Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
        )
        latest = max([latest, *(part["LastModified"] for page in pages for part in page.get("Parts", []))])
    return latest


def _newest_mtime(path: Path) -> float:
    """The newest modification time of ``path`` and everything below it (a file being written is new)."""
    newest = path.lstat().st_mtime
    if path.is_dir() and not path.is_symlink():
        for folder, dirs, files in os.walk(path):
            for name in (*dirs, *files):
                with contextlib.suppress(FileNotFoundError):
                    newest = max(newest, os.lstat(os.path.join(folder, name)).st_mtime)
    return newest


def remove_stale_staging(lake: Lake, *, now: datetime, older_than: timedelta = STALE_STAGING) -> list[str]:
    """Remove what exports that died (``kill -9``, power loss) left behind: every entry of
    ``TO/_staging/`` in which nothing changed for ``older_than`` (locally: the newest modification time
    of anything inside; on S3: the newest ``LastModified`` of its objects and parts), and on S3 every
    incomplete multipart upload under the lake's prefix that has not moved for that long. An export
    still running keeps writing and is left alone. Best effort (failures are logged); returns what was
    removed."""
    removed: list[str] = []
    cutoff = now - older_than
    try:
        if lake.s3 is not None:
            removed = _remove_stale_s3(lake.s3, lake.root, cutoff)
        else:
            staging = Path(lake.root) / STAGING
            entries = sorted(staging.iterdir()) if staging.is_dir() else []
            for entry in entries:
                try:
                    if _newest_mtime(entry) >= cutoff.timestamp():
                        continue
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.rmtree(entry)
                    else:
                        entry.unlink()
                except FileNotFoundError:  # another export removed it meanwhile
                    continue
                removed.append(str(entry))
    except (OSError, BotoCoreError, ClientError) as exc:
        log.warning("could not remove stale staging in %s: %s", lake.uri, first_line(exc))
    for what in removed:
        log.info("removed %s, left by an export that did not finish", what)
    return removed


def _remove_stale_s3(client: S3Client, root: str, cutoff: datetime) -> list[str]:
    bucket, _, prefix = root.partition("/")
    lake_prefix = f"{prefix}/" if prefix else ""
    staging_prefix = f"{lake_prefix}{STAGING}/"
    newest: dict[str, datetime] = {}  # staging run -> when anything in it last changed
    keys: defaultdict[str, list[str]] = defaultdict(list)
    run_uploads: defaultdict[str, list[MultipartUploadTypeDef]] = defaultdict(list)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=staging_prefix)
    for page in pages:
        for obj in page.get("Contents", []):
            run = obj["Key"][len(staging_prefix) :].split("/", 1)[0]
            keys[run].append(obj["Key"])
            newest[run] = max(newest.get(run, obj["LastModified"]), obj["LastModified"])
    removed: list[str] = []
    for upload in _s3_uploads(client, bucket, lake_prefix):
        activity = _s3_upload_activity(client, bucket, upload, cutoff)
        if upload["Key"].startswith(staging_prefix):
            run = upload["Key"][len(staging_prefix) :].split("/", 1)[0]
            run_uploads[run].append(upload)
            newest[run] = max(newest.get(run, activity), activity)
        elif activity < cutoff:  # e.g. a multipart copy of a publish that died
            _s3_abort(client, bucket, upload)
            removed.append(f"the upload of s3://{bucket}/{upload['Key']}")
    for run, last in sorted(newest.items()):
        if last >= cutoff:
            continue
        for upload in run_uploads[run]:
            _s3_abort(client, bucket, upload)
        _s3_delete(client, bucket, keys[run])
        removed.append(f"s3://{bucket}/{staging_prefix}{run}")
    return removed


# --------------------------------------------------------------------------------------------------
# DDL (pure)

_HIVE_TYPES: dict[str, str] = {
    "bool": "boolean",
    "int16": "smallint",
    "int32": "int",
    "int64": "bigint",
    "float": "float",
    "double": "double",
    "string": "string",
    "date32[day]": "date",
    "binary": "binary",
}


def hive_type(t: pa.DataType) -> str:
    """Athena/Spark (Hive DDL) type of an Arrow type."""
    if pa.types.is_list(t):
        return f"array<{hive_type(t.value_type)}>"
    if pa.types.is_timestamp(t):
        return "timestamp"
    if pa.types.is_decimal(t):
        return f"decimal({t.precision},{t.scale})"
    if pa.types.is_time(t) or pa.types.is_duration(t):
        return "bigint"
    return _HIVE_TYPES[str(t)]


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


LATEST_SUFFIX = "_latest"
_PLAIN_NAME = re.compile(r"[a-z_][a-z0-9_]*")


def _view_name(name: str, quote: str) -> str:
    """A name as a view statement writes it: plain names bare (Athena's views are Trino SQL, which has
    no backticks, while Spark reads double quotes as a string), others quoted for the one engine."""
    return name if _PLAIN_NAME.fullmatch(name) else f"{quote}{name.replace(quote, quote * 2)}{quote}"


def _latest_view(table: str, quote: str) -> str:
    """``<table>_latest``: the rows of the table's newest ``dt`` (a string ``YYYY-MM-DD``, so the
    greatest string is the newest date)."""
    view, name = _view_name(table + LATEST_SUFFIX, quote), _view_name(table, quote)
    newest = f"(SELECT max({PARTITION}) FROM {name})"  # noqa: S608
    return f"CREATE OR REPLACE VIEW {view} AS\nSELECT * FROM {name} WHERE {PARTITION} = {newest};"


def _duckdb_columns(schema: pa.Schema) -> str:
    """``*``, with every timestamp column read as ``TIMESTAMP WITH TIME ZONE``: the files hold INT96
    instants in UTC, which DuckDB reads as a ``TIMESTAMP`` without a zone."""
    stamps = [f.name for f in schema if pa.types.is_timestamp(f.type)]
    if not stamps:
        return "*"
    quoted = ['"' + name.replace('"', '""') + '"' for name in stamps]
    return "* REPLACE (" + ", ".join(f"timezone('UTC', {q}) AS {q}" for q in quoted) + ")"


def ddl(
    metadata: sa.MetaData,
    location: str,
    dialect: str,
    *,
    tables: Sequence[str] | None = None,
    with_raw: bool = False,
    include_gone: bool = False,
) -> str:
    """The statements that read the Parquet lake at ``location``, per table: one named as the table
    over every snapshot (Athena ``CREATE EXTERNAL TABLE`` with partition projection on ``dt``, Spark SQL
    ``CREATE TABLE ... USING parquet`` + ``MSCK REPAIR TABLE``, DuckDB ``CREATE VIEW``), then a view
    ``<table>_latest`` of only its newest ``dt``."""
    if dialect not in DDL_DIALECTS:
        raise UsageError(f"unknown DDL dialect {dialect!r}; choose {', '.join(DDL_DIALECTS)}")
    root = location.rstrip("/")
    if dialect == "athena" and not root.startswith("s3://"):
        raise UsageError("Athena reads from S3: give --to s3://bucket/prefix")
    statements = []
    for table in select_tables(metadata, tables):
        schema = arrow_schema(table, with_raw=with_raw, include_gone=include_gone)
        where = f"{root}/{table.name}"
        if dialect == "duckdb":
            glob = _sql_string(f"{where}/*/*.parquet")
            name = '"' + table.name.replace('"', '""') + '"'
            statements.append(
                f"CREATE OR REPLACE VIEW {name} AS SELECT {_duckdb_columns(schema)} FROM "  # noqa: S608
                f"read_parquet({glob}, hive_partitioning = true, hive_types = {{'{PARTITION}': VARCHAR}});\n"
                + _latest_view(table.name, '"')
            )
            continue
        cols = ",\n".join(f"  `{f.name}` {hive_type(f.type)}" for f in schema)
        if dialect == "spark":
            statements.append(
                f"CREATE TABLE IF NOT EXISTS `{table.name}` (\n{cols},\n  `{PARTITION}` string\n)\n"
                f"USING parquet\nPARTITIONED BY ({PARTITION})\nLOCATION {_sql_string(where + '/')};\n"
                f"MSCK REPAIR TABLE `{table.name}`;\n" + _latest_view(table.name, "`")
            )
        else:
            props = {
                "projection.enabled": "true",
                f"projection.{PARTITION}.type": "date",
                f"projection.{PARTITION}.format": "yyyy-MM-dd",
                f"projection.{PARTITION}.range": "2000-01-01,NOW",
                f"projection.{PARTITION}.interval": "1",
                f"projection.{PARTITION}.interval.unit": "DAYS",
                "storage.location.template": f"{where}/{PARTITION}=${{{PARTITION}}}/",
            }
            tblprops = ",\n".join(f"  {_sql_string(k)} = {_sql_string(v)}" for k, v in props.items())
            statements.append(
                f"CREATE EXTERNAL TABLE IF NOT EXISTS `{table.name}` (\n{cols}\n)\n"
                f"PARTITIONED BY (`{PARTITION}` string)\nSTORED AS PARQUET\n"
                f"LOCATION {_sql_string(where + '/')}\nTBLPROPERTIES (\n{tblprops}\n);\n"
                + _latest_view(table.name, '"')
            )
    return "\n\n".join(statements) + "\n"
