"""The lake's types: the Arrow schema of a table from its SQLAlchemy schema (pure).

Integers stay integers, timestamps are UTC, JSON columns with ``info={"list_of": T}`` become lists of
``T``, other JSON columns text. A text column with ``info={"partial_date": True}`` (``release_date``:
``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD``) becomes a DATE of the same name, the first day of its year or
month where the text is coarser, followed by the text as it was in ``<name>_text``. Which columns go to
the lake (``raw`` and ``gone_at`` on request), which are dictionary-encoded in Parquet, and which rows
are current are decided here too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from spotify_catalog.errors import UsageError

RAW_COLUMN = "raw"
GONE_COLUMN = "gone_at"  # set on rows no longer in the catalog; such rows are exported only when asked
PARTIAL_DATE = "partial_date"  # column info: a YYYY, YYYY-MM or YYYY-MM-DD text, a DATE in the lake
TEXT_SUFFIX = "_text"  # the lake's column of such a text as it was: release_date_text
_PARTIAL_DATE_TEXT = r"^[0-9]{4}(-[0-9]{2}(-[0-9]{2})?)?$"


def base_type(sa_type: sa.types.TypeEngine[Any]) -> sa.types.TypeEngine[Any]:
    """The storage type under any ``TypeDecorator`` (e.g. a UTC datetime decorator)."""
    while isinstance(sa_type, sa.types.TypeDecorator):
        sa_type = sa_type.impl_instance
    return sa_type


def arrow_type(
    sa_type: sa.types.TypeEngine[Any], *, list_of: sa.types.TypeEngine[Any] | None = None
) -> pa.DataType:
    """The Arrow type for a SQLAlchemy type; JSON with ``list_of`` is a list, other JSON is text."""
    t = base_type(sa_type)
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


def read_schema(table: sa.Table, *, with_raw: bool = False, include_gone: bool = False) -> pa.Schema:
    """The Arrow schema of ``table``'s exported columns as the readers give them: one field a column,
    order and nullability as in the database."""
    return pa.schema(
        [
            pa.field(c.name, arrow_type(c.type, list_of=c.info.get("list_of")), nullable=bool(c.nullable))
            for c in exported_columns(table, with_raw=with_raw, include_gone=include_gone)
        ]
    )


def _lake_fields(
    table: sa.Table, *, with_raw: bool, include_gone: bool
) -> list[tuple[sa.Column[Any], pa.Field[Any]]]:
    """The fields of the lake, each with the column it comes from: a partial date's DATE, then its text."""
    columns = exported_columns(table, with_raw=with_raw, include_gone=include_gone)
    fields: list[tuple[sa.Column[Any], pa.Field[Any]]] = []
    for column, read in zip(
        columns, read_schema(table, with_raw=with_raw, include_gone=include_gone), strict=True
    ):
        if column.info.get(PARTIAL_DATE):
            fields.append((column, pa.field(column.name, pa.date32(), nullable=True)))
            fields.append((column, read.with_name(column.name + TEXT_SUFFIX)))
        else:
            fields.append((column, read))
    return fields


def arrow_schema(table: sa.Table, *, with_raw: bool = False, include_gone: bool = False) -> pa.Schema:
    """The Arrow schema of ``table`` in the lake: column order and nullability as in the database, a
    partial date (``release_date``) as a DATE followed by its text (``release_date_text``)."""
    return pa.schema([f for _, f in _lake_fields(table, with_raw=with_raw, include_gone=include_gone)])


def partial_dates(texts: pa.Array[Any]) -> pa.Array[Any]:
    """``YYYY``, ``YYYY-MM`` and ``YYYY-MM-DD`` texts as dates, the first day of the year or month where
    the text is coarser; null where the text is null or not such a date (year ``0000``, Spotify's
    unknown; a 30 February)."""
    given: Any = texts
    shaped: Any = pc.and_(
        pc.match_substring_regex(given, _PARTIAL_DATE_TEXT), pc.invert(pc.starts_with(given, "0000"))
    )
    length: Any = pc.utf8_length(given)
    padded: Any = pc.if_else(
        pc.equal(length, pa.scalar(4, pa.int32())),
        pc.binary_join_element_wise(given, "-01-01", ""),
        pc.if_else(
            pc.equal(length, pa.scalar(7, pa.int32())), pc.binary_join_element_wise(given, "-01", ""), given
        ),
    )
    padded = pc.if_else(shaped, padded, pa.scalar(None, pa.string()))
    dates: Any = pc.cast(pc.strptime(padded, format="%Y-%m-%d", unit="s", error_is_null=True), pa.date32())
    exact = pc.equal(pc.strftime(dates, format="%Y-%m-%d"), padded)  # strptime rolls 02-30 over to 03-01
    return cast("pa.Array[Any]", pc.if_else(exact, dates, pa.scalar(None, pa.date32())))


def to_lake(table: sa.Table, batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """A reader's ``batch`` of ``table`` as the lake holds it (``schema``: :func:`arrow_schema`): each
    partial date's column as dates, followed by its text."""
    partial = [c.name for c in table.columns if c.info.get(PARTIAL_DATE) and c.name in batch.schema.names]
    if not partial:
        return batch
    arrays: list[pa.Array[Any]] = []
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        arrays.extend([partial_dates(column), column] if name in partial else [column])
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def is_json_object(column: sa.Column[Any]) -> bool:
    """Whether ``column`` holds JSON objects (``raw``): a JSON column that is not a list."""
    return isinstance(base_type(column.type), sa.JSON) and "list_of" not in column.info


def holds_objects(column: sa.Column[Any]) -> bool:
    """Whether the list column ``column`` holds JSON objects (each kept in the lake as JSON text)."""
    return isinstance(base_type(column.info["list_of"]), sa.JSON)


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
    return is_json_object(column)


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
    return [
        leaf
        for column, field in _lake_fields(table, with_raw=with_raw, include_gone=include_gone)
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


def select_tables(metadata: sa.MetaData, names: Sequence[str] | None) -> list[sa.Table]:
    """The tables to export: the named ones, or every table not starting with ``_``."""
    if not names:
        return [t for t in metadata.sorted_tables if not t.name.startswith("_")]
    unknown = [n for n in names if n not in metadata.tables]
    if unknown:
        known = ", ".join(sorted(t for t in metadata.tables if not t.startswith("_")))
        raise UsageError(f"unknown table {', '.join(unknown)}; tables: {known}")
    return [metadata.tables[n] for n in dict.fromkeys(names)]
