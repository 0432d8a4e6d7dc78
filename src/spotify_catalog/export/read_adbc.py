"""ADBC: PostgreSQL read as Arrow (``adbc-driver-postgresql``, the ``parquet`` extra; binary COPY) in the
snapshot of the export's connection, and the read-ahead thread every ADBC reader uses."""

from __future__ import annotations

import contextlib
import importlib
import logging
import re
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, cast

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from spotify_catalog.errors import StorageError, first_line
from spotify_catalog.export.arrays import list_column, own_copy
from spotify_catalog.export.reader import ReadOptions
from spotify_catalog.export.types import base_type
from spotify_catalog.redaction import redact_url

log = logging.getLogger(__name__)

ADBC_BATCH_BYTES = 4 * 2**20  # Arrow data per batch ADBC reads from PostgreSQL (its default: 16 MiB)
READ_AHEAD_BATCHES = 4  # ADBC batches read ahead while the main thread converts and writes


def driver(module: str) -> Any:
    """The DBAPI module of an ADBC driver (``adbc_driver_postgresql.dbapi``, ...), or None when the
    ``parquet`` extra's driver is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def postgresql_driver() -> Any:
    """``adbc_driver_postgresql.dbapi``, or None when it is not installed."""
    return driver("adbc_driver_postgresql.dbapi")


def adbc_message(exc: BaseException) -> str:
    """An ADBC error's first line without the driver's prefixes (``INVALID_ARGUMENT: [SQLite] Failed
    to prepare query: no such table: t`` -> ``no such table: t``)."""
    return _ADBC_PREFIX.sub("", first_line(exc))


_ADBC_PREFIX = re.compile(r"^(?:[A-Z_]+: )?(?:\[SQLite\] )?(?:Failed to \w+ query: )?")


def close_quietly(connection: Any, module: Any) -> None:
    """Close an ADBC connection, ignoring the driver's errors (it may be closed already)."""
    with contextlib.suppress(module.Error):
        connection.close()


def read_ahead(
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
                        message = redact_url(adbc_message(exc))
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


def exact_in_postgresql(column: sa.Column[Any]) -> bool:
    """Whether ADBC's PostgreSQL types for ``column`` cast to the lake's exactly: text, integers,
    booleans, floats, timestamps, dates and JSON (lists included); not decimals, times, intervals,
    binary or UUIDs (those take the psycopg cursor)."""
    t = base_type(column.type)
    if isinstance(t, sa.JSON):
        element = column.info.get("list_of")
        return element is None or isinstance(base_type(element), sa.JSON | sa.String | sa.Integer)
    if isinstance(t, sa.Uuid | sa.Enum):
        return False
    return isinstance(t, sa.String | sa.Integer | sa.Boolean | sa.Float | sa.DateTime | sa.Date) and not (
        isinstance(t, sa.Numeric) and not isinstance(t, sa.Float)
    )


class PostgresArrowReader:
    """One table through an ADBC PostgreSQL connection of its own that sees what the SQLAlchemy
    connection it was opened from sees (:meth:`open`); the connection is closed when the table is read."""

    name = "adbc-postgresql"

    def __init__(self, connection: Any, options: ReadOptions) -> None:
        self.connection, self.options = connection, options

    @classmethod
    def open(cls, conn: sa.Connection, table: sa.Table, options: ReadOptions) -> PostgresArrowReader | None:
        """A reader of ``table`` whose ADBC connection imports ``conn``'s snapshot
        (``pg_export_snapshot``) and ``search_path``. None (read through psycopg instead) when the
        driver is not installed, a column type has no exact Arrow match, or the connection cannot be
        made."""
        if not all(exact_in_postgresql(c) for c in options.columns(table)):
            return None
        adbc_pg = postgresql_driver()
        if adbc_pg is None:
            return None
        compiled = options.query(table).compile(dialect=conn.dialect)
        if compiled.params or "%" in str(compiled):  # written for psycopg's placeholders
            return None
        snapshot = conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one()
        search_path = conn.exec_driver_sql("SELECT current_setting('search_path')").scalar_one()
        url = conn.engine.url.set(drivername="postgresql")
        try:
            arrow = adbc_pg.connect(url.render_as_string(hide_password=False), autocommit=True)
        except adbc_pg.Error as exc:
            log.info("reading through psycopg: ADBC could not connect (%s)", redact_url(first_line(exc)))
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
        return cls(arrow, options)

    def batches(self, table: sa.Table) -> Iterator[pa.RecordBatch]:
        """The rows of ``table`` as Arrow from ADBC (PostgreSQL's binary COPY), cast to the lake's
        schema, in slices of ``batch_rows``."""
        log.info("reading %s through ADBC (adbc-driver-postgresql)", table.name)
        adbc_pg: Any = postgresql_driver()
        schema = self.options.schema(table)
        from_list = {
            i: list_column(c, f.type)
            for i, (c, f) in enumerate(zip(self.options.columns(table), schema, strict=True))
            if pa.types.is_list(f.type)
        }
        query = self.options.query(table)
        sql = str(query.compile(dialect=cast("sa.Dialect", postgresql.dialect())))  # type: ignore[no-untyped-call]
        try:
            with self.connection.cursor() as cur:
                cur.adbc_statement.set_options(
                    **{"adbc.postgresql.batch_size_hint_bytes": str(ADBC_BATCH_BYTES)}
                )
                cur.execute(sql)
                reader = cur.fetch_record_batch()
                with contextlib.closing(read_ahead(reader, (adbc_pg.Error,))) as batches:
                    yield from _cast(batches, from_list, schema, self.options.batch_rows)
        except adbc_pg.Error as exc:
            raise StorageError(f"reading the database failed: {redact_url(first_line(exc))}") from None
        finally:
            self.close()

    def close(self) -> None:
        close_quietly(self.connection, postgresql_driver())


def _cast(
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
                arrays.append(own_copy(array) if array.type == field.type else array.cast(field.type))
        whole = pa.RecordBatch.from_arrays(arrays, schema=schema)
        for start in range(0, whole.num_rows, batch_rows):
            yield whole.slice(start, batch_rows)
