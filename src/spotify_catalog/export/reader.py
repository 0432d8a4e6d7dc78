"""The one interface of the readers: a table of the database as Arrow record batches.

Every reader (:mod:`~spotify_catalog.export.read_driver`: SQLAlchemy's rows and the driver's cursor;
:mod:`~spotify_catalog.export.read_adbc`: ADBC PostgreSQL; :mod:`~spotify_catalog.export.read_sqlite`:
ADBC SQLite; :mod:`~spotify_catalog.export.read_mysql`: MariaDB's CSV lines) gives the same batches
for the same table: its columns' schema (:func:`~spotify_catalog.export.types.read_schema`; the
export makes them the lake's with :func:`~spotify_catalog.export.types.to_lake`), primary key order,
at most ``batch_rows`` rows a batch. Which one reads a table is decided in
:mod:`~spotify_catalog.export.choose` alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import pyarrow as pa
import sqlalchemy as sa

from spotify_catalog.export.arrays import exact_as_text
from spotify_catalog.export.types import (
    arrow_schema,
    current_rows,
    exported_columns,
    is_json_object,
    read_schema,
)

DEFAULT_BATCH_ROWS = 5_000  # rows fetched and converted at a time: small keeps Python's memory flat


class Reader(Protocol):
    """Reads tables as Arrow record batches; ``name`` says which path it is (``rows``, ``cursor``,
    ``adbc-postgresql``, ``adbc-sqlite``, ``mysql-csv``)."""

    @property
    def name(self) -> str: ...

    def batches(self, table: sa.Table) -> Iterator[pa.RecordBatch]:
        """The rows of ``table`` (the columns, rows and batch size of the reader's :class:`ReadOptions`)."""
        ...

    def close(self) -> None:
        """Free what the reader holds (a connection of its own); reading again is not allowed."""
        ...


@dataclass(frozen=True)
class ReadOptions:
    """What is read: ``raw`` only with ``with_raw``, gone rows (and ``gone_at``) only with
    ``include_gone``, at most ``batch_rows`` rows a batch."""

    with_raw: bool = False
    include_gone: bool = False
    batch_rows: int = DEFAULT_BATCH_ROWS

    def columns(self, table: sa.Table) -> list[sa.Column[Any]]:
        return exported_columns(table, with_raw=self.with_raw, include_gone=self.include_gone)

    def schema(self, table: sa.Table) -> pa.Schema:
        """The schema of the batches a reader gives (:func:`read_schema`)."""
        return read_schema(table, with_raw=self.with_raw, include_gone=self.include_gone)

    def lake_schema(self, table: sa.Table) -> pa.Schema:
        """The schema of the lake's files (:func:`~spotify_catalog.export.types.arrow_schema`)."""
        return arrow_schema(table, with_raw=self.with_raw, include_gone=self.include_gone)

    def rows(self, table: sa.Table) -> sa.Select[Any]:
        """The query of the exported columns and rows, not yet ordered."""
        query = sa.select(*(selected(c) for c in self.columns(table)))
        return query if self.include_gone else query.where(*current_rows(table))

    def query(self, table: sa.Table) -> sa.Select[Any]:
        """:meth:`rows` in primary key order."""
        return self.rows(table).order_by(*table.primary_key.columns)

    def as_text(self, table: sa.Table) -> bool:
        """Whether every exported column of ``table`` has an exact text path (:func:`exact_as_text`)
        and its whole primary key is exported (so no row is all NULL)."""
        columns, schema = self.columns(table), self.schema(table)
        keys = list(table.primary_key.columns)
        if not keys or any(k not in columns for k in keys):
            return False
        return all(exact_as_text(c, f.type) for c, f in zip(columns, schema, strict=True))


def selected(column: sa.Column[Any]) -> sa.ColumnElement[Any]:
    """JSON objects (``raw``) are read as the text the database holds: no parsing and re-serialising."""
    if is_json_object(column):
        return sa.cast(column, sa.Text).label(column.name)
    return column
