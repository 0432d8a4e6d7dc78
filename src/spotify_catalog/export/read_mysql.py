"""MariaDB/MySQL read as Arrow without a Python object per value: the server writes each row as one
CSV line, and Arrow's CSV reader parses a batch of lines at a time.

SQLAlchemy's rows (the only other path on MariaDB) cost pymysql decoding every value in Python,
about 70 % of the export's time. Here pymysql hands over one ``bytes`` a row (``CAST(CONCAT_WS(',',
...) AS BINARY)``), on the export's own connection, so in its transaction and snapshot: text quoted
``"..."`` with ``"`` doubled (a NULL is an empty unquoted field, an empty text ``""``), numbers,
booleans (``0``/``1``), dates and timestamps as the server prints them, which Arrow parses to the
lake's types (lists from their JSON text as on the ADBC paths). ``docs/performance.md`` ("MariaDB
reader") has the alternatives measured.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import pyarrow as pa
import pyarrow.csv as pa_csv
import sqlalchemy as sa

from spotify_catalog.export.arrays import list_column
from spotify_catalog.export.read_driver import CursorReader
from spotify_catalog.export.reader import ReadOptions
from spotify_catalog.export.types import current_rows

CSV_DRIVERS = {("mysql", "pymysql"), ("mariadb", "pymysql")}  # (dialect, driver) MysqlCsvReader reads


def _csv_type(target: pa.DataType) -> pa.DataType:
    """The type Arrow parses a column's CSV text as: lists as their JSON text, timestamps naive (the
    server prints UTC without a zone), floats as doubles (cast after, as the rows path does)."""
    if pa.types.is_list(target):
        return pa.string()
    if pa.types.is_timestamp(target):
        return pa.timestamp(target.unit)
    if pa.types.is_floating(target):
        return pa.float64()
    return target


def _field(column: sa.Column[Any], target: pa.DataType) -> sa.ColumnElement[Any]:
    """``column`` as one CSV field: text quoted (a NULL is an empty unquoted field), others as the
    server prints them (a NULL empty)."""
    if pa.types.is_string(target) or pa.types.is_list(target):
        quoted = sa.func.concat('"', sa.func.replace(column, '"', '""'), '"')
        return sa.case((column.is_(None), ""), else_=quoted)
    return sa.func.ifnull(column, "")


class MysqlCsvReader(CursorReader):
    """Every table whose columns all have an exact text path and whose primary key is exported (a
    line is then never empty: :meth:`ReadOptions.as_text`), on ``conn``'s pymysql connection."""

    name = "mysql-csv"

    @classmethod
    def open(cls, conn: sa.Connection, table: sa.Table, options: ReadOptions) -> MysqlCsvReader | None:
        """A reader of ``table`` over ``conn``, or None (SQLAlchemy's rows instead): another driver, or
        a column without an exact text path."""
        if (conn.dialect.name, conn.dialect.driver) not in CSV_DRIVERS:
            return None
        return cls(conn, options) if options.as_text(table) else None

    def describe(self) -> str:
        return f"CSV lines of the server ({self.conn.dialect.driver})"

    def statement(self, table: sa.Table) -> sa.Select[Any]:
        columns, schema = self.options.columns(table), self.options.schema(table)
        line = sa.func.concat_ws(",", *(_field(c, f.type) for c, f in zip(columns, schema, strict=True)))
        query = sa.select(sa.cast(line, sa.LargeBinary)).select_from(table)
        if not self.options.include_gone:
            query = query.where(*current_rows(table))
        return query.order_by(*table.primary_key.columns)

    def cursor(self, dbapi_conn: Any) -> Any:
        from pymysql.cursors import SSCursor  # the rows streamed, not buffered

        return dbapi_conn.cursor(SSCursor)

    def converter(self, table: sa.Table, description: Any) -> Callable[[Sequence[Any]], pa.RecordBatch]:
        columns, schema = self.options.columns(table), self.options.schema(table)
        parse_options = pa_csv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False)
        convert_options = pa_csv.ConvertOptions(
            column_types={f.name: _csv_type(f.type) for f in schema},
            null_values=[""],
            true_values=["1"],
            false_values=["0"],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        )
        lists = {
            i: list_column(c, f.type)
            for i, (c, f) in enumerate(zip(columns, schema, strict=True))
            if pa.types.is_list(f.type)
        }

        def convert(rows: Sequence[Any]) -> pa.RecordBatch:
            data = b"\n".join(row[0] for row in rows)
            parsed = pa_csv.read_csv(
                cast(Any, pa.BufferReader(data)),
                read_options=pa_csv.ReadOptions(
                    column_names=schema.names, use_threads=False, block_size=len(data) + 1
                ),
                parse_options=parse_options,
                convert_options=convert_options,
            )
            arrays = []
            for i, field in enumerate(schema):
                array: Any = parsed.column(i).combine_chunks()
                arrays.append(lists[i](array) if i in lists else array.cast(field.type))
            return pa.RecordBatch.from_arrays(arrays, schema=schema)

        return convert
